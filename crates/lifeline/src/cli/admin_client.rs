//! A small client for a running gateway's admin API, shared by the
//! subcommands that act through it (`status`, `incident`, `maintenance`).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the admin API is and how to authenticate.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminArgs {
    /// The gateway's admin listener, e.g. http://127.0.0.1:8081.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8081")]
    pub admin: String,
    /// Admin token (`[admin] token` in the gateway's config).
    #[arg(
        long,
        global = true,
        env = "LIFELINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// Sends one request; returns the status code and the body parsed as JSON.
/// A non-2xx answer is an error carrying the API's own message.
pub async fn call(
    args: &AdminArgs,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{}", args.admin.trim_end_matches('/'), path);
    let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let mut req = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes))
        .context("bad --admin URL")?;
    if let Some(t) = &args.token {
        let v = http::HeaderValue::from_str(&format!("Bearer {t}"))
            .context("token is not a valid header value")?;
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .context("timed out")?
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    if !status.is_success() {
        let msg = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        anyhow::bail!("{url}: HTTP {status}: {msg}");
    }
    Ok(value)
}

/// Unix milliseconds as `2026-12-01 02:00 UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}
