//! `lifeline audit`: the audit log of admin actions, newest first, read
//! from the store named by the config's `[store] url` directly (whether or
//! not `lifeline serve` runs).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lifeline_store::AuditStore;

use super::keys::{blocking, store_file, time};

/// Flags of `lifeline audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Config file whose `[store] url` names the store (without it, the
    /// built-in example's: `lifeline.db` in the working directory).
    #[arg(long, short, env = "LIFELINE_CONFIG")]
    config: Option<PathBuf>,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// Runs `lifeline audit`.
pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let path = store_file(args.config.as_deref())?;
    let limit = args.limit;
    let entries = blocking(path, move |s| Ok(s.audit_log(limit, None)?)).await?;
    let mut out = std::io::stdout().lock();
    let header = ["ID", "TIME", "ACTOR", "SOURCE", "ACTION", "TARGET"].map(str::to_owned);
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.id.to_string(),
                time(Some(e.at)),
                e.actor.clone(),
                e.source.clone(),
                e.action.clone(),
                e.target.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
