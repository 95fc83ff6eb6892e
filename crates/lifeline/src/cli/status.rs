//! `lifeline status --admin URL`: what a running gateway sees, per deployment.

use std::io::Write;
use std::process::ExitCode;

use super::admin_client::{call, AdminArgs};

/// Flags of `lifeline status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Fetches and prints the deployments' state.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let v = call(&args.admin, http::Method::GET, "/admin/deployments", None).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
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
        if d["maintenance"].as_bool() == Some(true) {
            notes.push("maintenance".to_string());
        } else if d["drained"].as_bool() == Some(true) {
            notes.push("drained".to_string());
        }
        if let Some(ms) = d["open_for_ms"].as_u64() {
            notes.push(format!("reopens in {:.1}s", ms as f64 / 1000.0));
        }
        if let Some(ms) = d["retry_after_ms"].as_u64() {
            notes.push(format!("retry-after {:.1}s", ms as f64 / 1000.0));
        }
        if let Some(signal) = d["early_warning"].as_str() {
            let factor = d["early_warning_factor"].as_f64().unwrap_or(1.0);
            notes.push(format!("demoted ({signal}, weight ×{factor:.2})"));
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
