//! `lifeline status --admin URL`: what a running gateway sees, per deployment.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Flags of `lifeline status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The gateway's admin listener, e.g. http://127.0.0.1:8081.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub admin: String,
    /// Admin token (`[admin] token` in the gateway's config).
    #[arg(long, env = "LIFELINE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Fetches and prints the deployments' state.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = format!("{}/admin/deployments", args.admin.trim_end_matches('/'));
    let mut req = http::Request::get(&url)
        .body(Full::new(Bytes::new()))
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
    if !status.is_success() {
        anyhow::bail!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        out.write_all(&body)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .context("the admin API answered something that is not JSON")?;
    writeln!(
        out,
        "{:<32} {:<10} {:>8} {:>10} {:>8} {:>9}  notes",
        "DEPLOYMENT", "BREAKER", "IN-FLT", "LATENCY", "ERR%", "WINDOW"
    )?;
    for d in v["deployments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let mut notes = Vec::new();
        if d["drained"].as_bool() == Some(true) {
            notes.push("drained".to_string());
        }
        if let Some(ms) = d["open_for_ms"].as_u64() {
            notes.push(format!("reopens in {:.1}s", ms as f64 / 1000.0));
        }
        if let Some(ms) = d["retry_after_ms"].as_u64() {
            notes.push(format!("retry-after {:.1}s", ms as f64 / 1000.0));
        }
        writeln!(
            out,
            "{:<32} {:<10} {:>8} {:>10} {:>7.1}% {:>9}  {}",
            d["id"].as_str().unwrap_or("?"),
            d["breaker"].as_str().unwrap_or("?"),
            d["in_flight"].as_u64().unwrap_or(0),
            d["latency_ms"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}ms")),
            d["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            d["window_successes"].as_u64().unwrap_or(0)
                + d["window_failures"].as_u64().unwrap_or(0),
            notes.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
