//! Client keys: who may use the data plane.
//!
//! Keys are configured as SHA-256 digests (or hashed at load), so the
//! running process never holds a client key in the clear. A presented key is
//! hashed and compared with every configured digest without early exit, so
//! the time taken does not depend on which key, or how much of one, matched.

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::KeyConfig;
use crate::error::ApiError;

/// The configured client keys.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<([u8; 32], Arc<str>)>,
}

impl KeySet {
    /// From the validated config.
    pub fn new(keys: &[KeyConfig]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| (k.sha256, Arc::from(k.name.as_str())))
                .collect(),
        }
    }

    /// Whether keys are required at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the request's key (`Authorization: Bearer`, or `api-key`);
    /// returns the key's name.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, ApiError> {
        if !self.enabled() {
            return Ok(None);
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "You didn't provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_KEY).",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Arc<str>> = None;
        for (hash, name) in &self.keys {
            let diff = hash
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(name);
            }
        }
        found
            .cloned()
            .map(Some)
            .ok_or_else(|| ApiError::unauthorized("Incorrect API key provided."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> KeySet {
        KeySet::new(&[KeyConfig {
            name: "app".into(),
            sha256: Sha256::digest(b"sk-good").into(),
        }])
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
        h
    }

    #[test]
    fn accepts_the_key_and_rejects_others() {
        let s = set();
        assert_eq!(
            s.check(&headers("authorization", "Bearer sk-good"))
                .ok()
                .flatten()
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            s.check(&headers("api-key", "sk-good"))
                .ok()
                .flatten()
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            s.check(&headers("authorization", "Bearer sk-bad"))
                .map_err(|e| e.status.as_u16()),
            Err(401)
        );
        assert_eq!(
            s.check(&HeaderMap::new()).map_err(|e| e.status.as_u16()),
            Err(401)
        );
        assert!(KeySet::default().check(&HeaderMap::new()).is_ok());
    }
}
