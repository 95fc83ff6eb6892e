//! The basic path: a request through the gateway reaches a provider and back.

use crate::harness::{config, mocks, one_tier, Env};

#[tokio::test]
async fn non_streaming_and_streaming_chat_pass_through() {
    let m = mocks(2).await;
    let env = Env::boot(&config(&m, "", &one_tier(&m)), m).await;
    let (status, headers, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["x-lifeline-deployment"]
        .to_str()
        .unwrap()
        .starts_with('p'));
    assert_eq!(headers["x-lifeline-attempts"], "1");
    assert!(headers.contains_key("x-request-id"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["model"].as_str().unwrap().starts_with("up-"), "{body}");
    let (status, _, body) = env.chat(true).await;
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    env.stop().await;
}
