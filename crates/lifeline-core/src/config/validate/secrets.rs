//! Secrets: `${VAR}` expansion and client keys.
//!
//! This is the only code that sees a secret's value. It expands `${VAR}` in
//! the values that may hold one (`api_key`, `base_url`, `[admin].token`,
//! `[[keys]].key`), wraps the results in [`Secret`] (whose `Debug` prints
//! nothing), and hashes client keys to SHA-256 at once, so the key itself is
//! not kept. Error messages here name variables and keys, never values.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::Validator;
use crate::config::model::{KeyConfig, ModelConfig, Priority, Secret};
use crate::config::raw::RawKey;

impl Validator<'_> {
    pub(super) fn keys(
        &mut self,
        raw: &[Spanned<RawKey>],
        models: &[ModelConfig],
    ) -> Vec<KeyConfig> {
        let mut names = HashMap::new();
        let mut hashes: HashMap<[u8; 32], usize> = HashMap::new();
        let mut keys = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let key = entry.get_ref();
            let f = |k: &str| format!("keys[{i}].{k}");
            self.unique(&mut names, &key.name, "keys", i);
            let name = self.name(&key.name, &f("name"));
            let sha256 = match (&key.key, &key.sha256) {
                (Some(_), Some(hex)) => {
                    self.at(hex, f("sha256"), "give either key or sha256, not both");
                    None
                }
                (None, None) => {
                    let msg = "needs key = \"${VAR}\" or sha256 = \"<64 hex characters>\"";
                    self.at(entry, format!("keys[{i}]"), msg);
                    None
                }
                (Some(k), None) => {
                    let secret = self.secret(k, &f("key"));
                    secret.map(|s| Sha256::digest(s.expose().as_bytes()).into())
                }
                (None, Some(hex)) => {
                    let parsed = parse_sha256(hex.get_ref());
                    if parsed.is_none() {
                        let got = hex.get_ref().chars().count();
                        let msg =
                            format!("must be 64 hex characters (a SHA-256), got {got} characters");
                        self.at(hex, f("sha256"), msg);
                    }
                    parsed
                }
            };
            let priority = match &key.priority {
                None => Priority::default(),
                Some(p) => Priority::parse(p.get_ref()).unwrap_or_else(|| {
                    let msg = format!(
                        "must be \"critical\", \"standard\" or \"batch\", got {:?}",
                        p.get_ref()
                    );
                    self.at(p, f("priority"), msg);
                    Priority::default()
                }),
            };
            let rpm = key
                .rpm
                .as_ref()
                .map(|_| self.nonzero(&key.rpm, &f("rpm"), 1));
            let tpm = key
                .tpm
                .as_ref()
                .map(|_| self.nonzero(&key.tpm, &f("tpm"), 1));
            let mut allowed = Vec::new();
            for (j, m) in key
                .models
                .iter()
                .flat_map(|l| l.get_ref().iter())
                .enumerate()
            {
                if models.iter().any(|c| c.name == *m.get_ref()) {
                    allowed.push(m.get_ref().clone());
                } else {
                    let msg = format!("names no configured model ({:?})", m.get_ref());
                    self.at(m, format!("keys[{i}].models[{j}]"), msg);
                }
            }
            let Some(sha256) = sha256 else { continue };
            if let Some(first) = hashes.get(&sha256) {
                let (value, which) = match (&key.key, &key.sha256) {
                    (Some(k), _) => (k, "key"),
                    (None, Some(h)) => (h, "sha256"),
                    (None, None) => continue,
                };
                self.at(value, f(which), format!("is the same key as keys[{first}]"));
            } else {
                hashes.insert(sha256, i);
            }
            keys.push(KeyConfig {
                name,
                sha256,
                priority,
                rpm,
                tpm,
                models: allowed,
            });
        }
        keys
    }

    /// An expanded, non-empty secret.
    pub(super) fn secret(&mut self, raw: &Spanned<String>, field: &str) -> Option<Secret> {
        let value = self.expand(raw, field)?;
        if value.is_empty() {
            self.at(
                raw,
                field,
                "is empty (is its environment variable set to \"\"?)",
            );
            return None;
        }
        Some(Secret::new(value))
    }

    /// `raw` with every `${VAR}` replaced by the variable's value, or `None`
    /// after reporting each variable that is malformed or not set.
    pub(super) fn expand(&mut self, raw: &Spanned<String>, field: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = raw.get_ref().as_str();
        let mut ok = true;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.at(raw, field, "has \"${\" without a closing \"}\"");
                return None;
            };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let msg = format!(
                    "${{{name}}} is not a valid environment variable name (letters, digits, _)"
                );
                self.at(raw, field, msg);
                ok = false;
            } else if let Some(value) = (self.env)(name) {
                out.push_str(&value);
            } else {
                self.at(
                    raw,
                    field,
                    format!("environment variable {name} is not set"),
                );
                ok = false;
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        ok.then_some(out)
    }
}

/// 32 bytes from 64 hex characters, either case.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}
