//! `lifeline mock`: run one simulated provider (OpenAI's API, and
//! Anthropic's Messages API on `/v1/messages`).
//!
//! Handy for trying the gateway without API keys, and for chaos runs by hand:
//! start it with faults from the command line, then change them while it runs
//! with `curl -X POST http://ADDR/_mock/faults -d '{"error_rate":0.5}'`.

use std::net::SocketAddr;

use anyhow::Context as _;
use lifeline_mock::{Faults, MockConfig, MockServer};

/// Run one simulated provider (OpenAI- and Anthropic-compatible, with injectable faults).
#[derive(clap::Args, Debug)]
pub struct MockArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Name shown in generated text and `system_fingerprint`.
    #[arg(long, default_value = "mock")]
    pub name: String,
    /// Streaming rate; 0 streams as fast as possible.
    #[arg(long, default_value_t = 200.0)]
    pub tokens_per_second: f64,
    /// Delay before the first stream chunk, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub ttft_ms: u64,
    /// Tokens per answer when the request sets no limit.
    #[arg(long, default_value_t = 16)]
    pub completion_tokens: u32,
    /// Context window in tokens: longer prompts (about four bytes a token)
    /// get 400 context_length_exceeded.
    #[arg(long, value_name = "TOKENS")]
    pub context_window: Option<u32>,
    /// Stem of generated words instead of --name, so several mocks answer
    /// identically (deployments of one model).
    #[arg(long, value_name = "STEM")]
    pub voice: Option<String>,

    /// Fraction (0..=1) of requests answered with --error-status.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// Status of injected errors.
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    /// `code` in injected error bodies, e.g. context_length_exceeded.
    #[arg(long)]
    pub error_code: Option<String>,
    /// Fraction (0..=1) of requests answered 429.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub rate_limit_rate: f64,
    /// Retry-After seconds on 429s and maintenance 503s.
    #[arg(long)]
    pub retry_after_secs: Option<u64>,
    /// Added before response headers, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Extra delay before the first stream chunk, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub first_token_delay_ms: u64,
    /// Accept requests and never answer.
    #[arg(long)]
    pub hang: bool,
    /// Reset the TCP connection before any response byte.
    #[arg(long)]
    pub reset: bool,
    /// Streams: abort the connection after N chunks.
    #[arg(long, value_name = "N")]
    pub cut_after_chunks: Option<u32>,
    /// Streams: stop sending after N chunks, keeping the connection open.
    #[arg(long, value_name = "N")]
    pub stall_after_chunks: Option<u32>,
    /// Streams: after N chunks send an in-band error event and end.
    #[arg(long, value_name = "N")]
    pub error_after_chunks: Option<u32>,
    /// Streams: send invalid JSON as chunk N (0-based).
    #[arg(long, value_name = "N")]
    pub malformed_chunk_at: Option<u32>,
    /// Streams: end without `data: [DONE]`.
    #[arg(long)]
    pub no_done: bool,
    /// Answer everything 503 maintenance.
    #[arg(long)]
    pub maintenance: bool,
    /// At most N injected 429s and errors, then normal answers.
    #[arg(long, value_name = "N")]
    pub max_injected: Option<u32>,
    /// Answer a trailing assistant message (prefill) with a 400.
    #[arg(long)]
    pub reject_prefill: bool,
}

impl MockArgs {
    /// The provider settings these flags describe.
    pub fn config(&self) -> MockConfig {
        MockConfig {
            name: self.name.clone(),
            tokens_per_second: self.tokens_per_second,
            ttft_ms: self.ttft_ms,
            completion_tokens: self.completion_tokens,
            context_window: self.context_window,
            voice: self.voice.clone(),
            faults: Faults {
                error_rate: self.error_rate,
                error_status: self.error_status,
                error_code: self.error_code.clone(),
                rate_limit_rate: self.rate_limit_rate,
                retry_after_secs: self.retry_after_secs,
                latency_ms: self.latency_ms,
                first_token_delay_ms: self.first_token_delay_ms,
                hang: self.hang,
                reset: self.reset,
                cut_after_chunks: self.cut_after_chunks,
                stall_after_chunks: self.stall_after_chunks,
                malformed_chunk_at: self.malformed_chunk_at,
                error_after_chunks: self.error_after_chunks,
                no_done: self.no_done,
                maintenance: self.maintenance,
                max_injected: self.max_injected,
                capacity: None,
                reject_prefill: self.reject_prefill,
                rpm_quota: None,
                quota_window_ms: None,
            },
        }
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    let fraction: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(format!("`{value}` is not between 0 and 1"))
    }
}

/// Serves until ctrl-c or SIGTERM, then stops gracefully.
pub async fn run(args: MockArgs) -> anyhow::Result<()> {
    let handle = MockServer::start(args.listen, args.config())
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let url = handle.base_url();
    tracing::info!(%url, name = %args.name, "mock provider listening");
    println!("lifeline mock listening on {url}");
    wait_for_shutdown().await?;
    tracing::info!("mock provider shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_shutdown() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for ctrl-c")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for ctrl-c")?;
    Ok(())
}
