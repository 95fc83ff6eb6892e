//! `lifeline maintenance schedule|list|cancel`: maintenance windows, through
//! the running gateway's admin API. During a window the affected
//! components' deployments get no new requests and the page shows them
//! under maintenance; the window starts and ends on time by itself.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use http::Method;
use serde_json::json;

use super::admin_client::{call, time, AdminArgs};

/// Flags of `lifeline maintenance`.
#[derive(clap::Args, Debug)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Schedule a window.
    Schedule {
        /// Title, e.g. "Provider migration".
        #[arg(long)]
        title: String,
        /// Start: RFC 3339 (2026-12-01T02:00:00Z) or in a while from now (+30m, +2h).
        #[arg(long)]
        start: String,
        /// End: RFC 3339, or a length after the start (30m, 2h).
        #[arg(long)]
        end: String,
        /// An affected component's id (repeat for several).
        #[arg(long = "component")]
        components: Vec<String>,
        /// The announcement (Markdown subset).
        #[arg(long, default_value = "")]
        body: String,
    },
    /// List the latest windows.
    List {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a window.
    Cancel {
        /// Window id.
        id: i64,
    },
}

/// `30m`, `2h`, `90s`, `1d` as milliseconds.
fn length_ms(text: &str) -> Option<i64> {
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let factor = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn rfc3339(text: &str) -> anyhow::Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| d.timestamp_millis())
        .with_context(|| format!("`{text}` is neither RFC 3339 nor +30m / +2h"))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Resolves `--start` and `--end` into unix milliseconds.
fn window(start: &str, end: &str, now: i64) -> anyhow::Result<(i64, i64)> {
    let from = match start.strip_prefix('+') {
        Some(rest) => now + length_ms(rest).with_context(|| format!("bad --start `{start}`"))?,
        None => rfc3339(start)?,
    };
    let until = match length_ms(end.trim_start_matches('+')) {
        Some(len) => from + len,
        None => rfc3339(end)?,
    };
    Ok((from, until))
}

/// Runs `lifeline maintenance …`.
pub async fn run(args: MaintenanceArgs) -> anyhow::Result<ExitCode> {
    let a = &args.admin;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Schedule {
            title,
            start,
            end,
            components,
            body,
        } => {
            let (from, until) = window(&start, &end, now_ms())?;
            let v = call(
                a,
                Method::POST,
                "/admin/maintenances",
                Some(
                    json!({"name": title, "scheduled_for": from, "scheduled_until": until,
                            "components": components, "body": body}),
                ),
            )
            .await?;
            writeln!(
                out,
                "Scheduled maintenance {}: {} to {}.",
                v["id"],
                time(from),
                time(until)
            )?;
        }
        Action::List { json } => {
            let v = call(a, Method::GET, "/admin/maintenances", None).await?;
            if json {
                writeln!(out, "{v}")?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:>5}  {:<12} {:<20} {:<20} TITLE",
                "ID", "STATUS", "FROM", "UNTIL"
            )?;
            for m in v["scheduled_maintenances"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                writeln!(
                    out,
                    "{:>5}  {:<12} {:<20} {:<20} {}",
                    m["id"].as_i64().unwrap_or(0),
                    m["status"].as_str().unwrap_or("?"),
                    time(m["scheduled_for"].as_i64().unwrap_or(0)),
                    time(m["scheduled_until"].as_i64().unwrap_or(0)),
                    m["name"].as_str().unwrap_or("")
                )?;
            }
        }
        Action::Cancel { id } => {
            call(
                a,
                Method::DELETE,
                &format!("/admin/maintenances/{id}"),
                None,
            )
            .await?;
            writeln!(out, "Cancelled maintenance {id}.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_flags() {
        assert_eq!(window("+30m", "1h", 0).unwrap(), (1_800_000, 5_400_000));
        assert_eq!(
            window("2026-12-01T02:00:00Z", "2026-12-01T03:00:00Z", 0).unwrap(),
            (1_796_090_400_000, 1_796_094_000_000)
        );
        assert!(window("soon", "1h", 0).is_err());
        assert!(window("+30x", "1h", 0).is_err());
        assert!(window("+30m", "later", 0).is_err());
    }
}
