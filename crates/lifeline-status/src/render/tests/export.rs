//! The static export: every document as a file, links between the pages
//! resolving to files that exist, stale files removed, no temporary files
//! left behind.

use std::fs;
use std::path::Path;

use super::*;
use crate::render::export;

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn writes_every_document() {
    let dir = tempfile::tempdir().unwrap();
    let page = rich_page();
    export(&page, dir.path()).unwrap();
    for rel in [
        "status/index.html",
        "status/index.de.html",
        "status/index.zh.html",
        "status/incidents/7.html",
        "status/incidents/7.de.html",
        "status/incidents/5.zh.html",
        "api/v2/summary.json",
        "api/v2/status.json",
        "api/v2/components.json",
        "api/v2/incidents.json",
        "api/v2/incidents/unresolved.json",
        "api/v2/scheduled-maintenances.json",
        "api/v2/scheduled-maintenances/upcoming.json",
        "api/v2/scheduled-maintenances/active.json",
        "history.atom",
        "history.rss",
        "badge/cmpchat001.svg",
        "badge/cmpembed01.svg",
    ] {
        assert!(dir.path().join(rel).is_file(), "{rel}");
    }
    assert!(read(dir.path(), "status/index.de.html").contains("<html lang=\"de\">"));
    let summary: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "api/v2/summary.json")).unwrap();
    assert_eq!(summary["page"]["id"], "gw01page");
    assert_eq!(
        read(dir.path(), "api/v2/summary.json").as_bytes(),
        &crate::render::json::documents(&page).unwrap().bodies[0][..]
    );

    // Every relative link of the pages points at a file that exists.
    for rel in [
        "status/index.html",
        "status/index.zh.html",
        "status/incidents/7.de.html",
    ] {
        let html = read(dir.path(), rel);
        let base = dir.path().join(rel);
        let base = base.parent().unwrap();
        for href in html
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            // `data:,` is the empty icon: no file.
            if href.starts_with("http")
                || href.starts_with('#')
                || href.starts_with("mailto:")
                || href == "data:,"
            {
                continue;
            }
            assert!(base.join(href).is_file(), "{rel} links to missing {href}");
        }
    }

    // No temporary file is left.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                assert!(
                    !entry.file_name().to_string_lossy().contains(".tmp-"),
                    "{:?}",
                    entry.path()
                );
            }
        }
    }
}

#[test]
fn a_new_export_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut page = rich_page();
    export(&page, dir.path()).unwrap();
    fs::write(dir.path().join("badge/keep-me.txt"), "not ours").unwrap();
    page.incidents.truncate(1);
    page.components.truncate(1);
    page.components[0].status = ComponentStatus::MajorOutage;
    export(&page, dir.path()).unwrap();
    assert!(!dir.path().join("status/incidents/5.html").exists());
    assert!(!dir.path().join("status/incidents/5.de.html").exists());
    assert!(!dir.path().join("badge/cmpembed01.svg").exists());
    assert!(dir.path().join("badge/keep-me.txt").exists());
    assert!(read(dir.path(), "badge/cmpchat001.svg").contains("major outage"));
    assert!(read(dir.path(), "api/v2/status.json").contains("\"indicator\":\"critical\""));
}
