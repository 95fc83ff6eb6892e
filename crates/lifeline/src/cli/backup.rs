//! `lifeline backup PATH` and `lifeline restore PATH`: a consistent copy of
//! the status store named by the config's `[store] url`, and bringing one
//! back.
//!
//! The backup is taken online: `lifeline serve` may keep running and
//! writing meanwhile (SQLite's backup API copies one consistent snapshot;
//! see `lifeline_store`'s `sqlite/backup.rs`). The copy is itself a store.
//!
//! The restore replaces the store's whole content with the copy, in one
//! transaction, after checking that the file is a Lifeline store (an SQLite
//! file with Lifeline's schema that passes an integrity check) from this
//! build or an older one; a file that is not is refused and the store left
//! as it was. What was written after the backup was taken is gone. Run it
//! with `lifeline serve` stopped: a running status side keeps the history
//! it holds in memory until it restarts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lifeline_core::config::example::example_config;
use lifeline_core::Config;
use lifeline_store::{SqliteStore, Store};

use crate::status_side::store_path;

/// Flags of `lifeline backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (an existing file there is replaced).
    pub path: PathBuf,
    /// Config file whose `[store] url` names the store (without it, the
    /// built-in example's: `lifeline.db` in the working directory).
    #[arg(long, short, env = "LIFELINE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `lifeline restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The copy to restore, written by `lifeline backup`.
    pub path: PathBuf,
    /// Config file whose `[store] url` names the store to replace (without
    /// it, the built-in example's: `lifeline.db` in the working directory).
    #[arg(long, short, env = "LIFELINE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The store's file, from the config (or the built-in example's).
fn store_file(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let config = match config {
        Some(path) => Config::load(path).map_err(|errors| {
            let list: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid config {}:\n{}", path.display(), list.join("\n"))
        })?,
        None => example_config().map_err(|e| anyhow::anyhow!("built-in example: {e}"))?,
    };
    Ok(store_path(&config))
}

/// Copies the store to `args.path`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let store = store_file(args.config.as_deref())?;
    if !store.is_file() {
        anyhow::bail!(
            "no store at {} (check [store] url, and the working directory for a relative path)",
            store.display()
        );
    }
    let (from, to) = (store.clone(), args.path.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let s = SqliteStore::open(&from)
            .with_context(|| format!("opening the store {}", from.display()))?;
        s.backup(&to)
            .with_context(|| format!("backing up {} to {}", from.display(), to.display()))?;
        Ok(())
    })
    .await??;
    writeln!(
        std::io::stdout().lock(),
        "Backed up {} to {}.",
        store.display(),
        args.path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Replaces the store's content with the copy at `args.path`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let store = store_file(args.config.as_deref())?;
    let (into, from) = (store.clone(), args.path.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        // Restoring onto a new machine creates the store; a refused restore
        // leaves no empty one behind.
        let existed = into.exists();
        let s = SqliteStore::open(&into)
            .with_context(|| format!("opening the store {}", into.display()))?;
        let restored = s.restore_from(&from);
        drop(s);
        if restored.is_err() && !existed {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = into.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        restored.with_context(|| {
            format!(
                "cannot restore {} from {} (the store is unchanged)",
                into.display(),
                from.display()
            )
        })?;
        Ok(())
    })
    .await??;
    writeln!(
        std::io::stdout().lock(),
        "Restored {} from {}.",
        store.display(),
        args.path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
