//! Fault injection, the control API, and kill/revive, over real sockets.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use super::{call, call_json, events, eventually, frames, quick, send, start};
use crate::{Faults, MockConfig};

const STREAM: &str = r#"{"model":"m","stream":true,"max_tokens":5}"#;

#[tokio::test]
async fn faults_round_trip_over_http() {
    let mock = start(quick()).await;
    let faults = json!({"error_rate": 0.5, "error_code": "x", "retry_after_secs": 3, "cut_after_chunks": 2, "no_done": true});
    let (status, echoed) = call_json(&mock, "POST", "/_mock/faults", faults).await;
    assert_eq!(status, StatusCode::OK);
    let expected = Faults {
        error_rate: 0.5,
        error_code: Some("x".into()),
        retry_after_secs: Some(3),
        cut_after_chunks: Some(2),
        no_done: true,
        ..Faults::default()
    };
    assert_eq!(mock.faults(), expected);
    assert_eq!(serde_json::from_value::<Faults>(echoed).unwrap(), expected);
    let (_, got) = call_json(&mock, "GET", "/_mock/faults", Value::Null).await;
    assert_eq!(serde_json::from_value::<Faults>(got).unwrap(), expected);

    let (status, body) =
        call_json(&mock, "POST", "/_mock/faults", json!({"no_such_fault": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no_such_fault"));

    call(&mock, "DELETE", "/_mock/faults", Value::Null).await;
    assert_eq!(mock.faults(), Faults::default());
    assert_eq!(mock.stats().requests, 0, "control calls are not counted");

    let config = json!({"name": "other", "completion_tokens": 2, "ttft_ms": 0});
    let (status, _) = call_json(&mock, "PUT", "/_mock/config", config).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = call_json(&mock, "POST", "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(body["choices"][0]["message"]["content"], "other1 other2");
}

#[tokio::test]
async fn error_rate_gives_the_status() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        error_rate: 1.0,
        error_status: 400,
        error_code: Some("context_length_exceeded".into()),
        ..Faults::default()
    });
    let (status, body) =
        call_json(&mock, "POST", "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    mock.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let (status, body) = call_json(&mock, "GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], Value::Null);
}

#[tokio::test]
async fn rate_limit_with_retry_after_and_maintenance() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: Some(7),
        ..Faults::default()
    });
    let (status, headers, body) =
        call(&mock, "POST", "/v1/embeddings", json!({"input": "a"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    mock.set_faults(Faults {
        maintenance: true,
        retry_after_secs: Some(9),
        ..Faults::default()
    });
    let (status, headers, body) = call(&mock, "GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "9");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "maintenance");
}

/// Past its `capacity` of requests in flight, the mock answers 429 and
/// counts them; its peak in flight is recorded.
#[tokio::test]
async fn capacity_refuses_the_requests_beyond_it() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        capacity: Some(1),
        latency_ms: 500,
        ..Faults::default()
    });
    let calls = (0..4).map(|_| {
        let mock = mock.clone();
        tokio::spawn(async move {
            call_json(&mock, "POST", "/v1/chat/completions", json!({"model": "m"}))
                .await
                .0
        })
    });
    let mut statuses = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        statuses.push(c.await.unwrap());
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert!(refused >= 1, "{statuses:?}");
    let stats = mock.stats();
    assert_eq!(stats.over_capacity, refused as u64);
    assert!(stats.peak_in_flight >= 2);
}

/// Past its `rpm_quota` within a minute, the mock answers 429 and counts
/// them; the refused requests do not use the quota up, and it frees as the
/// window slides on.
#[tokio::test]
async fn rpm_quota_refuses_the_requests_beyond_it_within_the_window() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        rpm_quota: Some(10),
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let chat = json!({"model": "m", "messages": []});
        statuses.push(call_json(&mock, "POST", "/v1/chat/completions", chat).await);
    }
    let ok = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(ok, 10, "{statuses:?}");
    let (status, body) = &statuses[14];
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(mock.stats().over_quota, 5);
    // A window of 2 s holds 10 × 2 000 / 60 000 → 1 request: the next
    // one is refused, and one after the window is accepted again.
    mock.set_faults(Faults {
        rpm_quota: Some(10),
        quota_window_ms: Some(2000),
        ..Faults::default()
    });
    let chat = || json!({"model": "m", "messages": []});
    let window = Duration::from_millis(2100);
    tokio::time::sleep(window).await;
    let first = call_json(&mock, "POST", "/v1/chat/completions", chat())
        .await
        .0;
    let second = call_json(&mock, "POST", "/v1/chat/completions", chat())
        .await
        .0;
    tokio::time::sleep(window).await;
    let later = call_json(&mock, "POST", "/v1/chat/completions", chat())
        .await
        .0;
    assert_eq!(first, StatusCode::OK);
    assert_eq!(second, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(later, StatusCode::OK);
}

#[tokio::test]
async fn reset_is_a_connection_error() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        reset: true,
        ..Faults::default()
    });
    let result = send(&mock, "POST", "/v1/chat/completions", "{}").await;
    assert!(
        result.is_err(),
        "expected a connection error, got {result:?}"
    );
    eventually(&mock, |s| {
        s.requests == 1 && s.in_flight == 0 && s.cancelled == 0
    })
    .await;

    // Raw socket: the read must fail with a reset, not a clean EOF.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert!(buf.is_empty());
}

#[tokio::test]
async fn cut_after_chunks_ends_the_body_with_an_error() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        cut_after_chunks: Some(3),
        ..Faults::default()
    });
    let response = send(&mock, "POST", "/v1/chat/completions", STREAM)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_some(), "body should end with an error");
    assert_eq!(events(&frames).len(), 3);
}

#[tokio::test]
async fn no_done_and_malformed_chunk() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        no_done: true,
        malformed_chunk_at: Some(1),
        ..Faults::default()
    });
    let response = send(&mock, "POST", "/v1/chat/completions", STREAM)
        .await
        .unwrap();
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    assert_eq!(
        frames.len(),
        7,
        "role, 5 tokens, finish; no [DONE]: {frames:?}"
    );
    assert_eq!(frames[1], "data: {\"broken\n\n");
    assert!(!frames.concat().contains("[DONE]"));
    eventually(&mock, |s| s.completed == 1).await;
}

#[tokio::test]
async fn stall_and_hang_count_as_cancelled_when_the_client_leaves() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        stall_after_chunks: Some(2),
        ..Faults::default()
    });
    let response = send(&mock, "POST", "/v1/chat/completions", STREAM)
        .await
        .unwrap();
    let mut body = response.into_body();
    let read = tokio::time::timeout(Duration::from_millis(300), frames(&mut body)).await;
    assert!(read.is_err(), "stalled stream must not end");
    drop(body);
    eventually(&mock, |s| s.cancelled == 1 && s.in_flight == 0).await;

    mock.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let hung = tokio::time::timeout(
        Duration::from_millis(200),
        send(&mock, "GET", "/v1/models", ""),
    )
    .await;
    assert!(hung.is_err(), "hang must not answer");
    eventually(&mock, |s| s.cancelled == 2 && s.in_flight == 0).await;
}

#[tokio::test]
async fn latency_delays_headers() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let started = tokio::time::Instant::now();
    let (status, _) = call_json(&mock, "GET", "/v1/models", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn kill_refuses_then_revive_serves_again() {
    let mock = start(MockConfig {
        tokens_per_second: 50.0,
        ..quick()
    })
    .await;
    // A stream in progress is reset by kill.
    let slow = r#"{"model":"m","stream":true,"max_tokens":500}"#;
    let response = send(&mock, "POST", "/v1/chat/completions", slow)
        .await
        .unwrap();
    let mut body = response.into_body();
    let killer = {
        let mock = mock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            mock.kill();
        })
    };
    let (received, error) = frames(&mut body).await;
    killer.await.unwrap();
    assert!(error.is_some(), "killed stream must end with an error");
    assert!(!received.is_empty());
    assert!(!mock.is_alive());

    let refused = tokio::net::TcpStream::connect(mock.addr()).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    mock.revive().await.unwrap();
    assert!(mock.is_alive());
    let (status, _) = call_json(&mock, "POST", "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(status, StatusCode::OK);
    mock.shutdown().await;
    assert!(!mock.is_alive());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let mock = start(quick()).await;
    let addr = mock.addr();
    let clone = mock.clone();
    drop(mock);
    assert!(clone.is_alive(), "a clone keeps it running");
    drop(clone);
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn context_window_refuses_long_prompts_like_openai() {
    let mock = start(MockConfig {
        context_window: Some(20),
        ..quick()
    })
    .await;
    let short = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = call_json(&mock, "POST", "/v1/chat/completions", short).await;
    assert_eq!(status, StatusCode::OK);
    let long = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    for path in ["/v1/chat/completions", "/v1/responses"] {
        let (status, body) = call_json(&mock, "POST", path, long.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 20 tokens"));
    }
    // Embeddings have no context window here.
    let (status, _) = call_json(
        &mock,
        "POST",
        "/v1/embeddings",
        json!({"model": "e", "input": "x".repeat(400)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mock.stats().requests, 4);
    // Settable at run time like every other setting.
    mock.set_config(MockConfig {
        context_window: None,
        ..quick()
    });
    let (status, _) = call_json(&mock, "POST", "/v1/chat/completions", long).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn max_injected_makes_a_passing_blip() {
    let mock = start(quick()).await;
    let chat = || json!({"model": "m"});
    mock.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        max_injected: Some(2),
        ..Faults::default()
    });
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            call_json(&mock, "POST", "/v1/chat/completions", chat())
                .await
                .0,
        );
    }
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    assert_eq!(
        got,
        [unavailable, unavailable, StatusCode::OK, StatusCode::OK]
    );
    // Setting the faults again starts a new blip; 429s count too.
    mock.set_faults(Faults {
        rate_limit_rate: 1.0,
        max_injected: Some(1),
        ..Faults::default()
    });
    let (first, _) = call_json(&mock, "POST", "/v1/chat/completions", chat()).await;
    let (second, _) = call_json(&mock, "POST", "/v1/chat/completions", chat()).await;
    assert_eq!(
        (first, second),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::OK)
    );
}

#[tokio::test]
async fn error_after_chunks_sends_an_in_band_error() {
    let mock = start(quick()).await;
    mock.set_faults(Faults {
        error_after_chunks: Some(2),
        ..Faults::default()
    });
    let response = send(&mock, "POST", "/v1/chat/completions", STREAM)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (frames, error) = frames(&mut response.into_body()).await;
    assert!(error.is_none());
    let events = events(&frames);
    assert_eq!(events.len(), 3, "role, one token, the error: {events:?}");
    assert_eq!(events[2]["error"]["type"], "server_error");
    assert!(!frames.concat().contains("[DONE]"));

    let body = r#"{"input":"hi","stream":true,"max_output_tokens":5}"#;
    let response = send(&mock, "POST", "/v1/responses", body).await.unwrap();
    let (received, _) = super::frames(&mut response.into_body()).await;
    assert_eq!(received.len(), 3);
    assert!(received[2].starts_with("event: error\n"), "{received:?}");
    eventually(&mock, |s| s.completed == 2).await;
}
