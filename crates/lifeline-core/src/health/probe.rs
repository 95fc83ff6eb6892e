//! Active probes: a cheap request that decides when an open breaker may
//! half-open, and that notices an idle deployment going bad before traffic
//! does.
//!
//! The probe is `GET {base_url}{probe_path}` (`/models` by default), which
//! costs no generated tokens; with `probe_completion = true` it is a
//! one-token chat completion for the deployment's own model instead. One prober task wakes every `probe_interval`,
//! asks each deployment whether a probe is due ([`Deployment::start_probe`])
//! and runs the due ones concurrently, each bounded by `probe_timeout`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;

use crate::attempt::HttpClient;
use crate::providers::Endpoint;
use crate::route::Deployment;

/// Probes `dep` once; `true` on a 2xx within `limit`.
pub async fn probe(client: &HttpClient, dep: &Deployment, limit: Duration) -> bool {
    let mut req = if dep.upstream.config.probe_completion {
        // One token for this deployment's own model: the truest signal, at a cost.
        let Ok(uri) = dep.uri(Endpoint::ChatCompletions) else {
            return false;
        };
        let body = format!(
            r#"{{"model":{},"max_tokens":1,"messages":[{{"role":"user","content":"ping"}}]}}"#,
            String::from_utf8_lossy(&dep.model_json)
        );
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        req
    } else {
        let Some(uri) = dep.upstream.probe_uri.clone() else {
            return false;
        };
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.uri_mut() = uri;
        req
    };
    if let Some((name, value)) = dep.upstream.auth() {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    match tokio::time::timeout(limit, client.request(req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}

/// Runs one round: starts every due probe; returns how many were started.
pub fn round(
    client: &HttpClient,
    deployments: &[Arc<Deployment>],
    limit: Duration,
    tracker: &tokio_util::task::TaskTracker,
) -> usize {
    let now = Instant::now();
    let mut started = 0;
    for dep in deployments {
        if dep.start_probe(now) {
            started += 1;
            let (client, dep) = (client.clone(), dep.clone());
            tracker.spawn(async move {
                let ok = probe(&client, &dep, limit).await;
                tracing::debug!(message = "Probe finished.", deployment = %dep.id, ok);
                dep.probe_result(ok);
            });
        }
    }
    started
}
