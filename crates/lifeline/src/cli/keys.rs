//! `lifeline keys create|list|revoke`: virtual client keys, written to and
//! read from the store named by the config's `[store] url` directly, so
//! they work whether or not `lifeline serve` runs. A running gateway reads
//! the active keys from the same store every second (`keys_sync.rs`).
//!
//! `create` validates and generates through [`lifeline_status::keys`] (the
//! same code as `POST /admin/keys`): 32 bytes from the operating system's
//! random source, printed once as `ll-` and 64 hex digits; only its SHA-256
//! and its first characters (`ll-1a2b`, for telling keys apart) are stored.
//! `create` and `revoke` are recorded in the audit log as `cli:USER` from
//! `local` (a failed audit write is a warning; the key change stands).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lifeline_core::config::example::example_config;
use lifeline_core::Config;
use lifeline_status::keys::{create, KeyRequest};
use lifeline_store::audit::NewAuditEntry;
use lifeline_store::keys::KeyInfo;
use lifeline_store::{KeyStore, SqliteStore};

use crate::status_side::store_path;

/// Flags of `lifeline keys`.
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// Config file whose `[store] url` names the store (without it, the
    /// built-in example's: `lifeline.db` in the working directory).
    #[arg(long, short, global = true, env = "LIFELINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Create a key; prints it once (only its hash is stored).
    Create {
        /// Display name (logs, metrics, lists).
        #[arg(long)]
        name: String,
        /// critical, standard or batch (stored; not enforced yet).
        #[arg(long, default_value = "standard")]
        priority: String,
        /// Requests per minute (at least 1; none: no limit).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        rpm: Option<u64>,
        /// Tokens per minute, estimated at admission and settled with the
        /// provider's usage (at least 1; none: no limit).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        tpm: Option<u64>,
        /// Models it may use, comma-separated; none: all (others are 404
        /// for this key).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// When it stops working (RFC 3339, e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the keys (never the keys themselves).
    List,
    /// Revoke a key: a running gateway refuses it within about a second.
    Revoke {
        /// Key id (from `keys list`).
        id: i64,
    },
}

/// The store's file, from the config (or the built-in example's).
pub(crate) fn store_file(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let config = match config {
        Some(path) => Config::load(path).map_err(|errors| {
            let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid config {}:\n{}", path.display(), list.join("\n"))
        })?,
        None => example_config().map_err(|e| anyhow::anyhow!("built-in example: {e}"))?,
    };
    Ok(store_path(&config))
}

/// The audit log's actor for a CLI write: `cli:` and the OS user.
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

/// Records a CLI write in the audit log; a failure is a warning.
fn audit(s: &SqliteStore, action: &str, target: i64) {
    let entry = NewAuditEntry {
        at_ms: now_ms(),
        actor: cli_actor(),
        source: "local".to_owned(),
        action: action.to_owned(),
        target: target.to_string(),
    };
    crate::status_side::ext::record(s, &entry);
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn row(k: &KeyInfo) -> [String; 11] {
    [
        k.id.to_string(),
        k.name.clone(),
        k.prefix.clone(),
        k.priority.clone(),
        count(k.rpm),
        count(k.tpm),
        if k.models.is_empty() {
            "all".to_owned()
        } else {
            k.models.join(",")
        },
        time(Some(k.created_at)),
        time(k.expires_at),
        time(k.revoked_at),
        time(k.last_used_at),
    ]
}

/// Runs `lifeline keys …`.
pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let path = store_file(args.config.as_deref())?;
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::Create {
            name,
            priority,
            rpm,
            tpm,
            models,
            expires,
        } => {
            let req = KeyRequest {
                name,
                priority: Some(priority),
                rpm,
                tpm,
                models: models.into_iter().filter(|m| !m.is_empty()).collect(),
                expires,
            };
            let created = blocking(path, move |s| {
                let created = create(s, req, now_ms())?;
                audit(s, "key.create", created.info.id);
                Ok(created)
            })
            .await?;
            writeln!(
                out,
                "Created key {} {:?} ({}). It is shown only now; keep it:",
                created.info.id, created.info.name, created.info.prefix
            )?;
            writeln!(out, "{}", created.key)?;
        }
        Action::List => {
            let keys = blocking(path, |s| Ok(s.list_keys(usize::MAX)?)).await?;
            let header = [
                "ID",
                "NAME",
                "PREFIX",
                "PRIORITY",
                "RPM",
                "TPM",
                "MODELS",
                "CREATED",
                "EXPIRES",
                "REVOKED",
                "LAST USED",
            ]
            .map(str::to_owned);
            let rows: Vec<[String; 11]> = keys.iter().map(row).collect();
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
        }
        Action::Revoke { id } => {
            let at = now_ms();
            let k = blocking(path, move |s| {
                let k = s.revoke_key(id, at)?;
                audit(s, "key.revoke", id);
                Ok(k)
            })
            .await?;
            writeln!(
                out,
                "Revoked key {} {:?} ({}) at {}.",
                k.id,
                k.name,
                k.prefix,
                time(k.revoked_at)
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the store and runs `f` on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce(&SqliteStore) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
        let s = SqliteStore::open(&path)
            .with_context(|| format!("opening the store {}", path.display()))?;
        f(&s)
    })
    .await?
}
