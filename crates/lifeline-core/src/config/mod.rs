//! Lifeline's configuration: one TOML file in, one validated [`Config`] out.
//!
//! Loading runs in two stages, so that nothing downstream ever sees an
//! unchecked value (ripgrep's `LowArgs → HiArgs`, TensorZero's
//! `Uninitialized*`):
//!
//! 1. `raw` parses the text into serde structs that mirror the file exactly
//!    (`deny_unknown_fields` everywhere) and keep the position of every value
//!    whose validation may fail.
//! 2. `validate` turns those into the types of [`model`]: durations typed,
//!    `${VAR}` secrets expanded, provider references resolved, client keys
//!    hashed, defaults filled in.
//!
//! Why so much care: a gateway that refuses to start, or that starts with a
//! typo in a fallback tier, fails exactly when it is needed. So every error
//! names the file, the line and the key (`models[0].tiers[1][0].provider`), and
//! validation reports all problems of a file at once instead of the first one.
//! Error messages never contain an expanded secret.
//!
//! `example` (with the `simulated` feature) holds the built-in configuration
//! `lifeline serve` runs when it is given none.

#[cfg(feature = "simulated")]
pub mod example;
pub mod model;
mod raw;
mod validate;

// The config tests use simulated providers (`kind = "mock"`) as the
// simplest valid provider, so they need the `simulated` feature, which a
// workspace build turns on through the binary.
#[cfg(all(test, feature = "simulated"))]
mod tests;

#[cfg(all(test, not(feature = "simulated")))]
mod tests_without_simulated {
    #[test]
    fn a_simulated_provider_is_rejected_with_file_line_and_field() {
        let text = "[server]\nlisten = \"127.0.0.1:0\"\n\n[[providers]]\nname = \"p\"\nkind = \"mock\"\n\n[[models]]\nname = \"m\"\ntiers = [[{ provider = \"p\", model = \"x\" }]]\n";
        let errors = match super::Config::parse(text, "t.toml") {
            Ok(_) => panic!("kind = \"mock\" accepted without the simulated feature"),
            Err(e) => e.to_string(),
        };
        assert!(
            errors.contains("t.toml:6: providers[0].kind: this build of Lifeline does not include the simulated provider"),
            "{errors}"
        );
    }
}

use std::fmt;
use std::path::Path;

pub use model::*;

/// One configuration error with its place.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    /// The file's path, or `"<built-in>"`.
    pub file: String,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// The key's path, e.g. `models[0].tiers[1][0].provider`; empty when the
    /// error concerns the whole file.
    pub field: String,
    /// What is wrong, and where it helps, how to fix it. Never holds a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `lifeline.toml:31: models[0].tiers[1][0].provider: no such provider "antrhopic" (known: primary, backup)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All errors found in one file (never stops at the first validation error).
///
/// Syntax and type errors stop parsing, so a file with one of those reports
/// only its syntax errors, or its first type error; once the file has the
/// right shape, every validation error is reported.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads, parses and validates the file at `path`. The result's `source`
    /// is `Some(path)`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                field: String::new(),
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        let mut config = Self::parse(&text, &file)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates `text`, naming it `file` in errors. `${VAR}` is
    /// taken from the process environment. The result's `source` is `None`.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        Self::parse_with_env(text, file, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::parse`], with `env` standing in for the environment
    /// (tests use it instead of mutating the process environment).
    pub fn parse_with_env(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let raw = raw::parse(text, file).map_err(ConfigErrors)?;
        validate::validate(raw, text, file, env).map_err(ConfigErrors)
    }

    /// The model clients call `name`, if configured.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The provider called `name`, if configured.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}
