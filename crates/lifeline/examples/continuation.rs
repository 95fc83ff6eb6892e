//! What a stream continuation costs the client: the added time to the next
//! token after a break (`cargo run --release --example continuation`; see
//! BENCHMARKS.md).
//!
//! Two simulated providers in two tiers, a gateway, all on loopback. The
//! first provider cuts every stream after [`CUT_AFTER`] chunks (the
//! connection aborted mid-answer); the second continues it. For each of
//! [`STREAMS`] streams (one at a time, so nothing else competes), the
//! client timestamps every text chunk as it arrives; the gap at the seam
//! (the last word of the first provider to the first word of the second)
//! is compared with the ordinary gap between two tokens. Cases:
//!
//! - `cut`: the connection is aborted mid-answer (seen at once), continued
//!   by instruction and seam (the default for OpenAI-compatible providers),
//!   then by prefill (`prefill = true` on the second provider);
//! - `stall`: the first provider stops sending after [`CUT_AFTER`] chunks
//!   and keeps the connection open, continued by prefill ([`STALL_STREAMS`]
//!   streams): the gap then includes the stall detection, the deployment's
//!   adaptive stall figure (`adaptive_timeout_floor_ms` is set to
//!   [`STALL_FLOOR_MS`] here, its default is 2 s), capped by
//!   `stream_idle_timeout_ms` ([`STALL_CAP_MS`] here). Every stream of the
//!   first provider stalls, so each stall is a sample of its gaps and its
//!   figure climbs to the cap: this case measures the cap plus the
//!   continuation.
//!
//! Each case first runs [`WARMUP`] streams that are not counted (the
//! adaptive figures need 20 samples of a deployment before they apply).
//! The first provider's breaker is kept closed (it would otherwise open
//! after a few broken streams and send every stream to the second
//! directly). Prints one JSON array, an object per case.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lifeline_core::{Config, Gateway, Server};
use lifeline_mock::{Faults, MockConfig, MockServer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Streams per method.
const STREAMS: usize = 200;
/// Words per answer.
const TOKENS: u32 = 40;
/// The first provider's stream is cut after this many chunks.
const CUT_AFTER: u32 = 20;
/// Token rate of both providers.
const TOKENS_PER_SECOND: f64 = 200.0;
/// Streams run first and not counted, per case.
const WARMUP: usize = 30;
/// The adaptive stall floor of the stall case (ms).
const STALL_FLOOR_MS: u64 = 100;
/// `stream_idle_timeout_ms` of the stall case.
const STALL_CAP_MS: u64 = 500;
/// Streams of the stall case.
const STALL_STREAMS: usize = 40;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut results = Vec::new();
    for (stall, prefill) in [(false, false), (false, true), (true, true)] {
        results.push(run(stall, prefill).await?);
    }
    println!("{}", serde_json::Value::Array(results));
    Ok(())
}

async fn run(stall: bool, prefill: bool) -> anyhow::Result<serde_json::Value> {
    let mut mocks = Vec::new();
    for (i, voice) in ["alpha", "beta"].iter().enumerate() {
        let cfg = MockConfig {
            name: format!("p{i}"),
            voice: Some((*voice).into()),
            tokens_per_second: TOKENS_PER_SECOND,
            ttft_ms: 0,
            completion_tokens: TOKENS,
            ..MockConfig::default()
        };
        mocks.push(MockServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await?);
    }
    mocks[0].set_faults(if stall {
        Faults {
            stall_after_chunks: Some(CUT_AFTER),
            ..Faults::default()
        }
    } else {
        Faults {
            cut_after_chunks: Some(CUT_AFTER),
            ..Faults::default()
        }
    });
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nretry_budget_min_per_sec = 1000\n\
         adaptive_timeout_floor_ms = {STALL_FLOOR_MS}\nstream_idle_timeout_ms = {STALL_CAP_MS}\n\n\
         [health]\nconsecutive_failures = 1000000\nmin_requests = 1000000\n\n\
         [[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
         [[providers]]\nname = \"p1\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\nprefill = {prefill}\n\n\
         [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"a\" }} ], [ {{ provider = \"p1\", model = \"b\" }} ] ]\n",
        mocks[0].base_url(),
        mocks[1].base_url()
    );
    let config = Config::parse(&toml, "<bench>").map_err(|e| anyhow::anyhow!("{e}"))?;
    let gw = Gateway::start(config).await?;
    let bound = Server::bind(gw.clone()).await?;
    let url = format!("http://{}/v1/chat/completions", bound.data_addr);
    let stop = CancellationToken::new();
    let server = tokio::spawn(bound.run(stop.clone()));
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(http);
    let body = Bytes::from_static(
        br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let (mut seam, mut normal) = (Vec::new(), Vec::new());
    let mut continued = 0;
    let (warmup, streams) = if stall {
        (5, STALL_STREAMS)
    } else {
        (WARMUP, STREAMS)
    };
    for n in 0..warmup + streams {
        let counted = n >= warmup;
        let req = http::Request::post(&url)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let resp = client.request(req).await?;
        let mut body = resp.into_body();
        let mut last: Option<(Instant, bool)> = None;
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("stream")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let now = Instant::now();
            let chunk = String::from_utf8_lossy(&data);
            text.push_str(&chunk);
            let beta = chunk.contains("beta");
            if !(chunk.contains("alpha") || beta) {
                continue;
            }
            if let (Some((then, was_beta)), true) = (last, counted) {
                let gap = now.duration_since(then).as_secs_f64() * 1000.0;
                if beta && !was_beta {
                    seam.push(gap);
                } else {
                    normal.push(gap);
                }
            }
            last = Some((now, beta));
        }
        if counted && text.contains(": lifeline continued=1") && text.ends_with("data: [DONE]\n\n")
        {
            continued += 1;
        }
    }
    stop.cancel();
    let _ = server.await;
    gw.close().await;
    for m in &mocks {
        m.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(serde_json::json!({
        "break": if stall { "stall" } else { "cut" },
        "method": if prefill { "prefill" } else { "instruction" },
        "streams": streams,
        "continued": continued,
        "token_gap_ms": {"p50": pct(&mut normal, 0.5), "p99": pct(&mut normal, 0.99)},
        "seam_gap_ms": {"p50": pct(&mut seam, 0.5), "p99": pct(&mut seam, 0.99)},
    }))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    (v[i.min(v.len() - 1)] * 100.0).round() / 100.0
}
