//! `lifeline`: the outage-proof front door for AI APIs.
//!
//! This file parses the command line, sets up logging and hands over to one
//! module per subcommand under `cli/`.

mod cli;
mod keys_sync;
mod status_side;

/// mimalloc instead of the system allocator: the request path allocates small,
/// short-lived buffers on every request, and glibc's malloc/free showed as
/// about 6 % of the gateway's CPU under load (bench/profile.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand, ValueEnum};

/// Lifeline keeps AI API requests succeeding when providers fail.
#[derive(Parser, Debug)]
#[command(name = "lifeline", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (with no --config: a built-in example with three simulated providers).
    Serve(cli::serve::ServeArgs),
    /// Gateway + simulated providers + traffic + an outage, with a live summary.
    Demo(cli::demo::DemoArgs),
    /// Rehearse failure scenarios on a config: verdicts, scorecard, report.
    Chaos(cli::chaos::ChaosArgs),
    /// Run one simulated provider (OpenAI and Anthropic APIs, injectable faults).
    Mock(cli::mock::MockArgs),
    /// Validate a config file and explain each error.
    Check(cli::check::CheckArgs),
    /// Show what a running gateway sees (through its admin API).
    Status(cli::status::StatusArgs),
    /// Open, update, resolve and list incidents (through the admin API).
    Incident(cli::incident::IncidentArgs),
    /// Schedule, list and cancel maintenance windows (through the admin API).
    Maintenance(cli::maintenance::MaintenanceArgs),
    /// Copy the status store consistently, also while `serve` runs.
    Backup(cli::backup::BackupArgs),
    /// Replace the status store's content with a copy made by `backup`.
    Restore(cli::backup::RestoreArgs),
    /// Subscribe, list and remove the status page's webhooks (through the admin API).
    Webhook(cli::webhook::WebhookArgs),
    /// Create, list and revoke virtual client keys (in the store, also while `serve` runs).
    Keys(cli::keys::KeysArgs),
    /// Show the audit log of admin actions, newest first (from the store).
    Audit(cli::audit::AuditArgs),
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo's own output is its live summary; keep library logs to warnings.
    let level = if matches!(cli.command, Command::Demo(_) | Command::Chaos(_)) {
        "error"
    } else {
        "info"
    };
    init_logging(cli.log_format, level);
    // On one core a single-threaded runtime does the same work without the
    // cross-thread scheduling of the multi-threaded one (BENCHMARKS.md);
    // `LIFELINE_WORKER_THREADS` overrides the core count.
    let workers = std::env::var("LIFELINE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let mut builder = if workers == 1 {
        // Only the blocking pool (the status side's store calls) spawns
        // threads here: named so they are told apart from runtime workers.
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.thread_name("lifeline-blocking");
        b
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lifeline: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(a) => cli::serve::run(a).await,
            Command::Demo(a) => cli::demo::run(a).await,
            Command::Chaos(a) => cli::chaos::run(a).await,
            Command::Mock(a) => cli::mock::run(a)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Check(a) => cli::check::run(a),
            Command::Status(a) => cli::status::run(a).await,
            Command::Incident(a) => cli::incident::run(a).await,
            Command::Maintenance(a) => cli::maintenance::run(a).await,
            Command::Webhook(a) => cli::webhook::run(a).await,
            Command::Keys(a) => cli::keys::run(a).await,
            Command::Audit(a) => cli::audit::run(a).await,
            Command::Backup(a) => cli::backup::backup(a).await,
            Command::Restore(a) => cli::backup::restore(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lifeline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
