//! Active probes, as a provider sees them: one cheap request that says
//! whether the deployment answers at all.
//!
//! The probe is `GET {base_url}{probe_path}` (`/models` by default), which
//! costs no generated tokens; with `probe_completion = true` it is a
//! one-token chat completion for the deployment's own model instead. When
//! to probe, and what a result means, is decided elsewhere (the prober task
//! in [`crate::gateway`], the breaker in [`crate::health`]).

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use super::{Endpoint, HttpClient, Upstream};

impl Upstream {
    /// The probe request for upstream model `model` (`model_json` is its
    /// JSON-encoded name); `None` when probes are disabled or the URL is bad.
    pub fn probe_request(&self, model: &str, model_json: &[u8]) -> Option<Request<Full<Bytes>>> {
        let mut req = if self.config.probe_completion {
            // One token for this deployment's own model: the truest signal,
            // at a cost. The body is valid in both protocols (Anthropic's
            // requires `max_tokens`, which it has).
            let uri = self.uri(Endpoint::ChatCompletions, model).ok()?;
            let body = format!(
                r#"{{"model":{},"max_tokens":1,"messages":[{{"role":"user","content":"ping"}}]}}"#,
                String::from_utf8_lossy(model_json)
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
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = self.probe_uri.clone()?;
            req
        };
        // The same headers as a request: an Anthropic provider wants its
        // `anthropic-version` on `GET /v1/models` too.
        self.headers(req.headers_mut());
        Some(req)
    }
}

/// Sends a probe; `true` on a 2xx within `limit`.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>, limit: Duration) -> bool {
    match tokio::time::timeout(limit, client.request(req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}
