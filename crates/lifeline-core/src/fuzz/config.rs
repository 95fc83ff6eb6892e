//! The config loader ([`Config::parse_with_env`]).
//!
//! Properties, on arbitrary text, on TOML token soup, and on the built-in
//! example with a few lines mutated (a value replaced by one of any type, a
//! line deleted or doubled, a key or a table header inserted, a byte
//! changed):
//!
//! - never a panic;
//! - every error names the file it was given, and a line of it;
//! - every error past the syntax stage names its key (`field`), and has a
//!   line unless it concerns the whole file (no `[[models]]` at all);
//! - no error shows the value of a `${VAR}` secret.

use proptest::prelude::*;

use crate::config::{Config, ConfigError};

const FILE: &str = "fuzz.toml";

/// A secret's value, recognisable in any message that would leak it.
const SECRET: &str = "xyzzy-secret";

/// The environment: variables whose name starts with A to M are set.
fn env(name: &str) -> Option<String> {
    name.starts_with(|c: char| ('A'..='M').contains(&c))
        .then(|| format!("{SECRET}-{name}"))
}

/// The example of the build (with the simulated providers), else a small
/// config of the same shape that needs none.
fn example() -> &'static str {
    #[cfg(feature = "simulated")]
    {
        crate::config::example::EXAMPLE_TOML
    }
    #[cfg(not(feature = "simulated"))]
    {
        "[server]\nlisten = \"127.0.0.1:8080\"\nauth = \"none\"\n\n[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"${API_KEY}\"\n\n[[models]]\nname = \"demo\"\ntiers = [[{ provider = \"a\", model = \"gpt-4o\", weight = 1 }]]\n"
    }
}

/// What must hold of the loader's answer to `text`.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Err(errors) = Config::parse_with_env(text, FILE, &env) else {
        return Ok(());
    };
    prop_assert!(!errors.0.is_empty(), "an error list with no error");
    let lines = text.lines().count().max(1) + 1;
    for e in &errors.0 {
        let ConfigError {
            file,
            line,
            field,
            message,
        } = e;
        prop_assert_eq!(file, FILE);
        prop_assert!(!message.is_empty(), "{}", e);
        prop_assert!(!e.to_string().contains(SECRET), "a secret in {}", e);
        let whole_file = field == "models" && message.starts_with("no [[models]]");
        match line {
            Some(l) => prop_assert!((1..=lines).contains(l), "line {} of {}: {}", l, lines, e),
            None => prop_assert!(whole_file, "no line: {}", e),
        }
        if !message.starts_with("TOML syntax error") && !whole_file {
            prop_assert!(!field.is_empty(), "no field: {}", e);
        }
    }
    Ok(())
}

/// A TOML string: plain, a `${VAR}`, or one a key expects.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ._:/@-]{0,12}".prop_map(|s| format!("{s:?}")),
        1 => "[A-Z][A-Z_]{0,6}".prop_map(|v| format!("\"${{{v}}}\"")),
        2 => prop::sample::select(vec![
            "\"127.0.0.1:0\"", "\"[::1]:8080\"", "\"none\"", "\"keys\"", "\"mock\"",
            "\"openai\"", "\"anthropic\"", "\"azure\"", "\"critical\"", "\"sqlite::memory:\"",
            "\"mock-a\"", "\"demo\"", "\"\\u0000\"", "'lit'", "\"\"\"multi\nline\"\"\"",
        ]).prop_map(str::to_owned),
    ]
}

/// A TOML number, integer or float.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|n| n.to_string()),
        3 => (0u64..100_000).prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec![
            "0", "-1", "1", "1.5", "-0.0", "nan", "inf", "-inf", "1e308", "0x1f", "1_000",
        ]).prop_map(str::to_owned),
    ]
}

/// A TOML value of any type, or something that is not one.
fn toml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        5 => string(),
        5 => number(),
        1 => prop::sample::select(vec![
            "true", "false", "1979-05-27T07:32:00Z", "07:32:00",
        ]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["", "=", "[", "{", "\"", "tru", "1..2"]).prop_map(str::to_owned),
    ];
    scalar.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..3).prop_map(|v| {
                let kv: Vec<String> = v.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", kv.join(", "))
            }),
        ]
    })
}

/// Keys the loader knows (in some table), and others.
fn key() -> impl Strategy<Value = String> {
    const KNOWN: [&str; 40] = [
        "name",
        "kind",
        "model",
        "provider",
        "weight",
        "tiers",
        "listen",
        "admin_listen",
        "status_listen",
        "auth",
        "api_key",
        "base_url",
        "api_version",
        "anthropic_version",
        "max_attempts",
        "first_byte_timeout_ms",
        "tier_wait_ms",
        "max_body_bytes",
        "key",
        "sha256",
        "priority",
        "rpm",
        "tpm",
        "models",
        "token",
        "url",
        "tls_cert",
        "tls_key",
        "hedge",
        "degraded",
        "max_json_depth",
        "trusted_proxies",
        "components",
        "slo",
        "tokens_per_second",
        "faults",
        "error_rate",
        "max_in_flight",
        "prefill",
        "endpoints",
    ];
    prop_oneof![
        4 => prop::sample::select(KNOWN.to_vec()).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// A table header the loader knows, or another.
fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "[server]", "[[providers]]", "[providers.mock]", "[providers.mock.faults]",
            "[[models]]", "[[keys]]", "[admin]", "[health]", "[store]", "[status]",
            "[admission]", "[[status.components]]", "[server]\n[server]",
        ]).prop_map(str::to_owned),
        1 => "[a-z_.]{1,10}".prop_map(|t| format!("[{t}]")),
    ]
}

/// One edit of the example.
#[derive(Debug, Clone)]
enum Edit {
    /// The value of the `n`-th `key = value` line.
    Value(usize, String),
    /// The value of the `n`-th `key = value` line, by one of the same
    /// type (a number, a string): what gets past parsing to validation.
    Same(usize, String, String),
    Delete(usize),
    Double(usize),
    Insert(usize, String),
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let n = any::<usize>();
    prop_oneof![
        3 => (n, toml_value()).prop_map(|(n, v)| Edit::Value(n, v)),
        3 => (n, number(), string()).prop_map(|(n, i, s)| Edit::Same(n, i, s)),
        1 => n.prop_map(Edit::Delete),
        1 => n.prop_map(Edit::Double),
        2 => (n, key(), toml_value()).prop_map(|(n, k, v)| Edit::Insert(n, format!("{k} = {v}"))),
        1 => (n, header()).prop_map(|(n, h)| Edit::Insert(n, h)),
        1 => (n, any::<u8>()).prop_map(|(n, b)| Edit::Byte(n, b)),
    ]
}

/// The example with `edits` applied.
fn mutate(edits: &[Edit]) -> String {
    let mut lines: Vec<String> = example().lines().map(str::to_owned).collect();
    for edit in edits {
        let len = lines.len().max(1);
        match edit {
            Edit::Value(n, v) => {
                let assignments: Vec<usize> = (0..lines.len())
                    .filter(|i| {
                        !lines[*i].trim_start().starts_with('#') && lines[*i].contains(" = ")
                    })
                    .collect();
                if let Some(&i) = assignments.get(n % assignments.len().max(1)) {
                    let key = lines[i].split(" = ").next().unwrap_or_default().to_owned();
                    lines[i] = format!("{key} = {v}");
                }
            }
            Edit::Same(n, number, string) => {
                let assignments: Vec<usize> = (0..lines.len())
                    .filter(|i| {
                        !lines[*i].trim_start().starts_with('#') && lines[*i].contains(" = ")
                    })
                    .collect();
                if let Some(&i) = assignments.get(n % assignments.len().max(1)) {
                    let (key, old) = lines[i].split_once(" = ").unwrap_or_default();
                    let new = match old.trim_start().as_bytes().first() {
                        Some(b'"') => string,
                        Some(b'0'..=b'9' | b'-') => number,
                        _ => old,
                    };
                    lines[i] = format!("{key} = {new}");
                }
            }
            Edit::Delete(n) if !lines.is_empty() => {
                lines.remove(n % len);
            }
            Edit::Double(n) if !lines.is_empty() => {
                let line = lines[n % len].clone();
                lines.insert(n % len, line);
            }
            Edit::Insert(n, line) => lines.insert(n % (lines.len() + 1), line.clone()),
            Edit::Byte(n, b) => {
                let mut text = lines.join("\n").into_bytes();
                if !text.is_empty() {
                    let i = n % text.len();
                    text[i] = *b;
                }
                let text = String::from_utf8_lossy(&text).into_owned();
                lines = text.lines().map(str::to_owned).collect();
            }
            _ => {}
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Pieces of TOML, strung together at random.
fn soup() -> impl Strategy<Value = String> {
    const TOKENS: [&str; 24] = [
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        "=",
        ",",
        ".",
        "\n",
        " ",
        "\"",
        "'",
        "#",
        "server",
        "providers",
        "models",
        "name",
        "tiers",
        "\"x\"",
        "1",
        "true",
        "\"\"\"",
        "\\",
    ];
    prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(super::cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn toml_token_soup_never_panics(text in soup()) {
        check(&text)?;
    }

    #[test]
    fn mutated_example_errors_name_file_line_and_field(
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        check(&mutate(&edits))?;
    }
}

#[test]
fn the_unmutated_example_loads() {
    assert!(Config::parse_with_env(&mutate(&[]), FILE, &env).is_ok());
}
