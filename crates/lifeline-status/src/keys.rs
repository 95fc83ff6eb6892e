//! Creating virtual client keys: the one validation and key generation
//! behind both `lifeline keys create` and `POST /admin/keys`.
//!
//! A key is `ll-` and 64 hex digits (32 bytes from the operating system's
//! random source); only its SHA-256 and its first seven characters (for
//! telling keys apart) are stored. The key is returned once, to be shown
//! once.

use lifeline_store::keys::{KeyInfo, NewKey, PRIORITIES};
use lifeline_store::{KeyStore, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Longest key name.
pub const MAX_NAME: usize = 200;

/// A key to create, as the CLI's flags or the API's JSON body give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// Display name (logs, metrics, lists).
    pub name: String,
    /// `critical`, `standard` (default) or `batch`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Requests per minute (at least 1), if limited.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute (at least 1), if limited.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// The public models it may use; empty: all.
    #[serde(default)]
    pub models: Vec<String>,
    /// When it stops working, RFC 3339 (`2027-01-31T00:00:00Z`).
    #[serde(default)]
    pub expires: Option<String>,
}

/// Why a key was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The request is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The operating system's random source failed.
    #[error("the OS random source: {0}")]
    Random(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A created key: what lists show of it, and the key, shown only now.
#[derive(Debug, Clone)]
pub struct Created {
    /// The stored key's details.
    pub info: KeyInfo,
    /// The key itself.
    pub key: String,
}

/// Checks `req` (at `now_ms`) and turns it into what the store takes,
/// less the key's hash and prefix.
fn validate(req: KeyRequest, now_ms: i64) -> Result<NewKey, CreateError> {
    let bad = |m: String| Err(CreateError::Invalid(m));
    let name = req.name.trim();
    if name.is_empty() {
        return bad("`name` must not be empty.".into());
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return bad(format!(
            "`name` must be at most {MAX_NAME} characters, without control characters."
        ));
    }
    let priority = req.priority.unwrap_or_else(|| "standard".into());
    if !PRIORITIES.contains(&priority.as_str()) {
        return bad(format!(
            "`priority` must be critical, standard or batch, got {:?}.",
            priority
        ));
    }
    for (field, value) in [("rpm", req.rpm), ("tpm", req.tpm)] {
        if value == Some(0) {
            return bad(format!(
                "`{field}` must be at least 1 (leave it out for no limit)."
            ));
        }
    }
    let mut models = Vec::new();
    for m in req.models {
        let m = m.trim();
        if m.is_empty() || m.contains(',') || m.chars().any(char::is_control) {
            return bad(format!("`models`: {m:?} is not a model name."));
        }
        if !models.iter().any(|k| k == m) {
            models.push(m.to_owned());
        }
    }
    let expires_at = match req.expires {
        None => None,
        Some(e) => {
            let at = chrono::DateTime::parse_from_rfc3339(&e)
                .map(|t| t.timestamp_millis())
                .map_err(|err| {
                    CreateError::Invalid(format!(
                        "`expires`: {e:?} is not an RFC 3339 time ({err}), e.g. 2027-01-31T00:00:00Z."
                    ))
                })?;
            if at <= now_ms {
                return bad(format!("`expires`: {e:?} is in the past."));
            }
            Some(at)
        }
    };
    Ok(NewKey {
        name: name.to_owned(),
        sha256: [0; 32],
        prefix: String::new(),
        priority,
        rpm: req.rpm,
        tpm: req.tpm,
        models,
        expires_at,
        at_ms: now_ms,
    })
}

/// A new key: `ll-` and 32 random bytes from the OS, in lowercase hex.
fn generate() -> Result<String, CreateError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CreateError::Random(e.to_string()))?;
    let mut key = String::with_capacity(3 + 64);
    key.push_str("ll-");
    for b in bytes {
        key.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        key.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Ok(key)
}

/// Validates `req`, generates a key and stores its hash.
pub fn create(store: &dyn KeyStore, req: KeyRequest, now_ms: i64) -> Result<Created, CreateError> {
    let mut new = validate(req, now_ms)?;
    let key = generate()?;
    new.sha256 = Sha256::digest(key.as_bytes()).into();
    new.prefix = key.chars().take(7).collect();
    let info = store.create_key(&new)?;
    Ok(Created { info, key })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn req(name: &str) -> KeyRequest {
        KeyRequest {
            name: name.into(),
            ..KeyRequest::default()
        }
    }

    fn invalid(r: KeyRequest) -> String {
        match validate(r, 1_000) {
            Err(CreateError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validates_every_field_with_a_precise_message() {
        assert!(invalid(req(" ")).contains("`name`"));
        let r = KeyRequest {
            priority: Some("urgent".into()),
            ..req("a")
        };
        assert!(
            invalid(r).contains("`priority` must be critical, standard or batch, got \"urgent\"")
        );
        let r = KeyRequest {
            rpm: Some(0),
            ..req("a")
        };
        assert!(invalid(r).contains("`rpm` must be at least 1"));
        let r = KeyRequest {
            models: vec!["a,b".into()],
            ..req("a")
        };
        assert!(invalid(r).contains("`models`"));
        let r = KeyRequest {
            expires: Some("tomorrow".into()),
            ..req("a")
        };
        assert!(invalid(r).contains("`expires`"));
        let ok = validate(
            KeyRequest {
                models: vec!["m".into(), "m".into()],
                expires: Some("2030-01-01T00:00:00Z".into()),
                ..req(" team ")
            },
            1_000,
        )
        .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.priority.as_str()),
            ("team", "standard")
        );
        assert_eq!(ok.models, ["m"]);
        assert_eq!(ok.expires_at, Some(1_893_456_000_000));
    }

    #[test]
    fn keys_are_prefixed_hex_and_distinct() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert!(a.starts_with("ll-") && a.len() == 67 && a != b);
        assert!(a[3..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
