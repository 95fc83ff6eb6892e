//! Test helpers: the fixtures under `translate/fixtures/`, written from each
//! API's documentation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/translate/fixtures")
}

/// One fixture file, parsed.
pub(super) fn fixture(path: &str) -> Value {
    let file = root().join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every fixture of a folder, by file name, sorted.
pub(super) fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let v = fixture(&format!("{dir}/{n}"));
            (n, v)
        })
        .collect()
}

/// A JSON value's bytes.
pub(super) fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Bytes as JSON.
pub(super) fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}
