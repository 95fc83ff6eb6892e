//! `lifeline webhook add|list|remove|deliveries`: the status page's webhook
//! subscribers, through the running gateway's admin API.

use std::io::Write;
use std::process::ExitCode;

use http::Method;
use serde_json::json;

use super::admin_client::{call, time, AdminArgs};

/// Flags of `lifeline webhook`.
#[derive(clap::Args, Debug)]
pub struct WebhookArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Subscribe a URL; prints the signing secret once.
    Add {
        /// Where to POST (http:// or https://).
        #[arg(long)]
        url: String,
        /// statuspage (Statuspage's webhook envelope), slack or discord.
        #[arg(long, default_value = "statuspage")]
        format: String,
        /// Only about this component (repeat for several; none: everything).
        #[arg(long = "component")]
        components: Vec<String>,
    },
    /// List the subscribers (never their secrets).
    List,
    /// Unsubscribe.
    Remove {
        /// Subscription id.
        id: i64,
    },
    /// A subscriber's delivery log, newest first.
    Deliveries {
        /// Subscription id.
        id: i64,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Runs `lifeline webhook …`.
pub async fn run(args: WebhookArgs) -> anyhow::Result<ExitCode> {
    let a = &args.admin;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Add {
            url,
            format,
            components,
        } => {
            let v = call(
                a,
                Method::POST,
                "/admin/webhooks",
                Some(json!({"url": url, "format": format, "components": components})),
            )
            .await?;
            writeln!(out, "Subscribed webhook {} ({format}).", v["id"])?;
            writeln!(
                out,
                "Signing secret (shown once; deliveries carry X-Lifeline-Signature: sha256=HMAC-SHA256(secret, \"{{X-Lifeline-Timestamp}}.{{body}}\")):"
            )?;
            writeln!(out, "{}", v["secret"].as_str().unwrap_or(""))?;
        }
        Action::List => {
            let v = call(a, Method::GET, "/admin/webhooks", None).await?;
            writeln!(
                out,
                "{:>5}  {:<11} {:<20} {:<24} URL",
                "ID", "FORMAT", "CREATED", "COMPONENTS"
            )?;
            for w in v["webhooks"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let comps: Vec<&str> = w["components"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:>5}  {:<11} {:<20} {:<24} {}",
                    w["id"].as_i64().unwrap_or(0),
                    w["format"].as_str().unwrap_or("?"),
                    time(w["created_at"].as_i64().unwrap_or(0)),
                    if comps.is_empty() {
                        "all".to_string()
                    } else {
                        comps.join(",")
                    },
                    w["url"].as_str().unwrap_or("")
                )?;
            }
        }
        Action::Remove { id } => {
            call(a, Method::DELETE, &format!("/admin/webhooks/{id}"), None).await?;
            writeln!(out, "Removed webhook {id}.")?;
        }
        Action::Deliveries { id, limit } => {
            let v = call(
                a,
                Method::GET,
                &format!("/admin/webhooks/{id}/deliveries?limit={limit}"),
                None,
            )
            .await?;
            writeln!(
                out,
                "{:>6}  {:<22} {:<10} {:>8} {:<20} LAST",
                "ID", "EVENT", "STATE", "ATTEMPTS", "CREATED"
            )?;
            for d in v["deliveries"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let last = match (d["last_status"].as_u64(), d["last_error"].as_str()) {
                    (Some(s), _) => format!("HTTP {s}"),
                    (None, Some(e)) => e.to_string(),
                    (None, None) => "-".to_string(),
                };
                writeln!(
                    out,
                    "{:>6}  {:<22} {:<10} {:>8} {:<20} {last}",
                    d["id"].as_i64().unwrap_or(0),
                    d["event"].as_str().unwrap_or("?"),
                    d["state"].as_str().unwrap_or("?"),
                    d["attempts"].as_i64().unwrap_or(0),
                    time(d["created_at"].as_i64().unwrap_or(0)),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
