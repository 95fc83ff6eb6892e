//! The static export: the same documents as files, so any static host can
//! serve the page while Lifeline itself is down.
//!
//! Layout under the directory: `status/index.html` (English),
//! `status/index.de.html`, `status/index.zh.html`,
//! `status/incidents/{id}{,.de,.zh}.html`, `api/v2/…json` (the eight
//! documents, same paths as served), `history.atom`, `history.rss`,
//! `badge/{component}.svg`. The pages link to each other relatively. Each
//! file is written to a temporary file beside it and renamed into place, so
//! a reader never sees half a file; incident pages and badges that are no
//! longer part of the page are removed.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::html::LinkMode;
use super::{RenderError, Rendered};
use crate::page::Page;

/// Writes every document of `page` under `dir` (created if missing).
pub fn export(page: &Page, dir: &Path) -> Result<(), RenderError> {
    let rendered = Rendered::build_with(page, LinkMode::Static)?;
    let files = rendered.files();
    for (rel, body) in &files {
        write_atomically(&dir.join(rel), body)?;
    }
    let written: HashSet<&str> = files.iter().map(|(rel, _)| rel.as_str()).collect();
    remove_stale(dir, "status/incidents", ".html", &written)?;
    remove_stale(dir, "badge", ".svg", &written)?;
    Ok(())
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn remove_stale(dir: &Path, sub: &str, ext: &str, written: &HashSet<&str>) -> std::io::Result<()> {
    let Ok(entries) = fs::read_dir(dir.join(sub)) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{sub}/{name}");
        if name.ends_with(ext) && !name.starts_with('.') && !written.contains(rel.as_str()) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
