//! The docs tell the truth: files they name exist, and every config key the
//! loader accepts is in the README's configuration reference.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn paths_named_in_the_docs_exist() {
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = read(doc);
        for word in text.split(|c: char| c.is_whitespace() || "`()|,[]".contains(c)) {
            let word = word.trim_end_matches(['.', ':', ';']);
            if word.starts_with("crates/") || word.starts_with("bench/") || word.starts_with(".ci/")
            {
                assert!(
                    root().join(word).exists(),
                    "{doc} names {word}, which does not exist"
                );
            }
        }
    }
}

#[test]
fn every_config_key_is_documented() {
    let raw = read("crates/lifeline-core/src/config/raw.rs");
    let readme = read("README.md");
    let mut checked = 0;
    for line in raw.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("pub ") else {
            continue;
        };
        let Some((key, _)) = rest.split_once(':') else {
            continue;
        };
        if key.contains(' ') || key.contains('(') {
            continue;
        }
        checked += 1;
        assert!(
            mentions(&readme, key),
            "config key `{key}` is not in README.md"
        );
    }
    assert!(
        checked > 30,
        "found only {checked} keys: has raw.rs changed shape?"
    );
}

/// Whether `word` occurs in `text` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}
