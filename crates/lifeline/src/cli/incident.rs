//! `lifeline incident open|update|resolve|postmortem|publish|eta|list|show`:
//! operators' incidents,
//! through the running gateway's admin API.

use std::io::Write;
use std::process::ExitCode;

use http::Method;
use serde_json::{json, Value};

use super::admin_client::{call, time, AdminArgs};

/// Flags of `lifeline incident`.
#[derive(clap::Args, Debug)]
pub struct IncidentArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Open an incident (published at once unless --draft).
    Open {
        /// Title, e.g. "Elevated errors on Chat Completions".
        #[arg(long)]
        title: String,
        /// The first update's text (Markdown subset).
        #[arg(long, default_value = "")]
        body: String,
        /// investigating, identified or monitoring.
        #[arg(long, default_value = "investigating")]
        status: String,
        /// none, minor, major or critical.
        #[arg(long, default_value = "minor")]
        impact: String,
        /// An affected component's id (repeat for several).
        #[arg(long = "component")]
        components: Vec<String>,
        /// Keep it off the page until published.
        #[arg(long)]
        draft: bool,
    },
    /// Post an update (status investigating, identified, monitoring, resolved or postmortem).
    Update {
        /// Incident id.
        id: i64,
        /// New status.
        #[arg(long)]
        status: String,
        /// The update's text.
        #[arg(long)]
        body: String,
    },
    /// Resolve an incident.
    Resolve {
        /// Incident id.
        id: i64,
        /// Closing text (default: "This incident has been resolved.").
        #[arg(long, default_value = "")]
        body: String,
    },
    /// Write an incident's postmortem (moves it to `postmortem`).
    Postmortem {
        /// Incident id.
        id: i64,
        /// The postmortem (Markdown subset).
        #[arg(long)]
        body: String,
    },
    /// Publish a draft (an automatic incident held with `publish_automatic = false`, or one opened with --draft).
    Publish {
        /// Incident id.
        id: i64,
    },
    /// Set the restoration estimate the page shows (overrides the one from history), or clear it.
    Eta {
        /// Incident id.
        id: i64,
        /// Expected minutes until resolved.
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        minutes: Option<u32>,
        /// Remove the operator's estimate (the page estimates from history again).
        #[arg(long)]
        clear: bool,
    },
    /// List the latest incidents, drafts included.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident with its timeline.
    Show {
        /// Incident id.
        id: i64,
    },
}

/// Runs `lifeline incident …`.
pub async fn run(args: IncidentArgs) -> anyhow::Result<ExitCode> {
    let a = &args.admin;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Open {
            title,
            body,
            status,
            impact,
            components,
            draft,
        } => {
            let v = call(
                a,
                Method::POST,
                "/admin/incidents",
                Some(json!({"name": title, "body": body, "status": status,
                            "impact": impact, "components": components, "draft": draft})),
            )
            .await?;
            writeln!(
                out,
                "Opened incident {}{}.",
                v["id"],
                if draft { " as a draft" } else { "" }
            )?;
        }
        Action::Update { id, status, body } => {
            call(
                a,
                Method::POST,
                &format!("/admin/incidents/{id}/updates"),
                Some(json!({"status": status, "body": body})),
            )
            .await?;
            writeln!(out, "Updated incident {id}: {status}.")?;
        }
        Action::Resolve { id, body } => {
            call(
                a,
                Method::POST,
                &format!("/admin/incidents/{id}/resolve"),
                Some(json!({"body": body})),
            )
            .await?;
            writeln!(out, "Resolved incident {id}.")?;
        }
        Action::Postmortem { id, body } => {
            call(
                a,
                Method::POST,
                &format!("/admin/incidents/{id}/updates"),
                Some(json!({"status": "postmortem", "body": body})),
            )
            .await?;
            writeln!(out, "Postmortem written for incident {id}.")?;
        }
        Action::Publish { id } => {
            call(
                a,
                Method::POST,
                &format!("/admin/incidents/{id}/publish"),
                None,
            )
            .await?;
            writeln!(out, "Published incident {id}.")?;
        }
        Action::Eta { id, minutes, clear } => {
            let minutes = if clear { None } else { minutes };
            call(
                a,
                Method::POST,
                &format!("/admin/incidents/{id}/eta"),
                Some(json!({ "minutes": minutes })),
            )
            .await?;
            match minutes {
                Some(m) => writeln!(out, "Incident {id}: expected resolved within {m} minutes.")?,
                None => writeln!(out, "Incident {id}: the estimate comes from history again.")?,
            }
        }
        Action::List { limit, json } => {
            let v = call(
                a,
                Method::GET,
                &format!("/admin/incidents?limit={limit}"),
                None,
            )
            .await?;
            if json {
                writeln!(out, "{v}")?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:>5}  {:<13} {:<8} {:<20} {:<6} TITLE",
                "ID", "STATUS", "IMPACT", "OPENED", "KIND"
            )?;
            for i in v["incidents"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                writeln!(out, "{}", line(i))?;
            }
        }
        Action::Show { id } => {
            let v = call(a, Method::GET, &format!("/admin/incidents/{id}"), None).await?;
            writeln!(out, "{}", line(&v))?;
            for u in v["incident_updates"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                writeln!(
                    out,
                    "  {}  {:<13} {}",
                    time(u["created_at"].as_i64().unwrap_or(0)),
                    u["status"].as_str().unwrap_or("?"),
                    u["body"].as_str().unwrap_or("")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(i: &Value) -> String {
    let kind = match (i["automatic"].as_bool(), i["draft"].as_bool()) {
        (_, Some(true)) => "draft",
        (Some(true), _) => "auto",
        _ => "manual",
    };
    format!(
        "{:>5}  {:<13} {:<8} {:<20} {:<6} {}",
        i["id"].as_i64().unwrap_or(0),
        i["status"].as_str().unwrap_or("?"),
        i["impact"].as_str().unwrap_or("?"),
        time(i["created_at"].as_i64().unwrap_or(0)),
        kind,
        i["name"].as_str().unwrap_or("")
    )
}
