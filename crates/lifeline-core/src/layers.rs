//! The dependency direction between the core's modules, checked.
//!
//! Modules depend only on modules of a lower layer, so that the code reads
//! in the order a request travels and each layer can be understood (and
//! replaced) without the ones above it. In particular health knows nothing
//! of the request path, and the request path knows nothing of the gateway
//! that assembles it. The table below is the rule; the test reads every
//! source file (outside its test modules) and fails on an import that goes
//! up or sideways.
//!
//! A second rule keeps each protocol's syntax in its adapter
//! (`providers/openai/`, `providers/anthropic/`): the relay and the attempt
//! loop hold state machines that ask the adapters what a stream's events
//! and a client's bytes mean, so their code (outside test modules) names
//! none of either wire's keys, events or sentinels ([`WIRE_SYNTAX`]).

/// Each module with its layer; a module may use only modules of lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("telemetry", 0),
    ("extension", 0),
    ("context", 1),
    ("gcra", 1),
    ("admission", 1),
    ("health", 1),
    ("concurrency", 1),
    ("retry", 1),
    ("translate", 1),
    ("degraded", 1),
    ("providers", 2),
    ("route", 3),
    ("balance", 4),
    ("relay", 4),
    ("body", 5),
    ("error", 6),
    ("auth", 7),
    ("ip_limit", 7),
    ("request", 7),
    ("attempt", 8),
    ("limit", 8),
    ("gateway", 9),
    ("admin", 10),
    ("server", 11),
    // Test-only: the property-based fuzz tests of every parser.
    ("fuzz", 12),
];

/// Modules that must not read or write a wire themselves.
const WIRE_FREE: &[&str] = &["relay", "attempt"];

/// What gives a wire's syntax away in source code: its JSON keys (as
/// literals), its event names and its sentinels.
const WIRE_SYNTAX: &[&str] = &[
    "[DONE]",
    "\\\"error\\\"",
    "\\\"type\\\"",
    "message_start",
    "message_delta",
    "message_stop",
    "content_block",
    "text_delta",
    "finish_reason",
    "stop_reason",
    "stream_options",
    "total_tokens",
    "completion_tokens",
    "output_tokens",
    "\"choices\"",
    "\"delta\"",
    "\"messages\"",
    "\"role\"",
    "\"content\"",
    "\"usage\"",
    "\"error\"",
    "\"type\"",
    "\"index\"",
    "max_tokens\"",
    "\"max_completion_tokens",
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{LAYERS, WIRE_FREE, WIRE_SYNTAX};

    fn layer(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
    }

    /// `crate::x` references in code (not comments, not test modules).
    fn uses(text: &str) -> Vec<String> {
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
        let mut out = Vec::new();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
        out
    }

    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }

    #[test]
    fn modules_depend_only_on_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let mut wrong = Vec::new();
        let mut checked = 0;
        for file in files {
            let rel = file.strip_prefix(&src).unwrap_or(&file);
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            if matches!(top.as_str(), "lib" | "layers") {
                continue;
            }
            let Some(own) = layer(&top) else {
                wrong.push(format!(
                    "{}: module `{top}` is not in LAYERS",
                    rel.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for used in uses(&text) {
                if used == top {
                    continue;
                }
                checked += 1;
                match layer(&used) {
                    Some(l) if l < own => {}
                    _ => wrong.push(format!(
                        "{}: `{top}` (layer {own}) uses `crate::{used}` (layer {:?})",
                        rel.display(),
                        layer(&used)
                    )),
                }
            }
        }
        assert!(checked > 20, "too few imports found: the scan is broken");
        assert!(
            wrong.is_empty(),
            "imports against the layering:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_scan_sees_imports_and_skips_comments() {
        let text = "use crate::route::Lease;\n// crate::gateway in a comment\nlet x = crate::health::Outcome::success(d);\n#[cfg(test)]\nmod tests { use crate::server; }";
        assert_eq!(uses(text), ["route", "health"]);
    }

    /// Code lines of a file: its test module and whole-line comments left
    /// out.
    fn code(text: &str) -> impl Iterator<Item = (usize, &str)> {
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
        code.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
    }

    #[test]
    fn wire_syntax_stays_in_the_adapters() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut wrong = Vec::new();
        let mut checked = 0;
        for module in WIRE_FREE {
            let mut files = Vec::new();
            walk(&src.join(module), &mut files);
            for file in files {
                let rel = file.strip_prefix(&src).unwrap_or(&file);
                let test_file = rel
                    .components()
                    .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs");
                if test_file {
                    continue;
                }
                checked += 1;
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                for (n, line) in code(&text) {
                    for token in WIRE_SYNTAX.iter().filter(|t| line.contains(**t)) {
                        wrong.push(format!("{}:{}: {token}", rel.display(), n + 1));
                    }
                }
            }
        }
        assert!(checked > 10, "too few files read: the scan is broken");
        assert!(
            wrong.is_empty(),
            "wire syntax outside the adapters (ask providers::stream or providers::continued):\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_wire_scan_sees_literals_and_skips_tests() {
        let text = "let x = v.get(\"choices\");\n// \"choices\" in a comment\n#[cfg(test)]\nmod tests { \"[DONE]\" }";
        let hits: Vec<usize> = code(text)
            .filter(|(_, l)| WIRE_SYNTAX.iter().any(|t| l.contains(*t)))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(hits, [0]);
    }
}
