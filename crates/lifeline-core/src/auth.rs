//! Client keys: who may use the data plane.
//!
//! Keys are configured as SHA-256 digests (or hashed at load), so the
//! running process never holds a client key in the clear. A presented key is
//! hashed and compared with every configured digest without early exit, so
//! the time taken does not depend on which key, or how much of one, matched.
//!
//! Beside the config's static keys ([`KeySet`]), the gateway holds dynamic
//! keys ([`DynamicKeys`]) that its embedder installs at any time
//! (`Gateway::set_dynamic_keys`; the binary loads them from its store every
//! second). The rule follows `[server] auth`: with `"none"` no key is
//! checked; with `"keys"` (the default) every data-plane request needs a
//! key from one of the two sets, and while neither holds one every request
//! is refused with a 401 that tells the operator how to create a key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{AuthMode, KeyConfig, Priority};
use crate::context::Tenant;
use crate::error::ApiError;

/// The configured client keys.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<([u8; 32], Arc<Tenant>)>,
    /// `auth = "none"`: nothing is checked.
    open: bool,
}

/// The 401 while `auth = "keys"` and no key exists anywhere.
const NO_KEYS: &str = "This gateway requires an API key, and none has been created yet. The operator can create one with `lifeline keys create` (or POST /admin/keys), or set auth = \"none\" under [server] to serve without keys.";

impl KeySet {
    /// From the validated config's `[server] auth` and `[[keys]]`.
    pub fn from_config(auth: AuthMode, keys: &[KeyConfig]) -> Self {
        Self {
            open: auth == AuthMode::None,
            ..Self::new(keys)
        }
    }

    /// The keys alone (`auth = "keys"`).
    pub fn new(keys: &[KeyConfig]) -> Self {
        Self {
            open: false,
            keys: keys
                .iter()
                .map(|k| {
                    let tenant = Tenant {
                        id: Arc::from(format!("config:{}", k.name)),
                        name: Arc::from(k.name.as_str()),
                        priority: k.priority,
                        rpm: k.rpm,
                        tpm: k.tpm,
                        models: k.models.iter().map(|m| Arc::from(m.as_str())).collect(),
                    };
                    (k.sha256, Arc::new(tenant))
                })
                .collect(),
        }
    }

    /// Whether the config lists any key.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether keys are not checked at all (`auth = "none"`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Checks the request's key (`Authorization: Bearer`, `api-key`, or
    /// Anthropic's `x-api-key`);
    /// returns the key's tenant.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<Tenant>>, ApiError> {
        self.check_with(&DynamicKeys::default(), headers)
    }

    /// [`KeySet::check`] against these keys and `dynamic` ones: a key from
    /// either is accepted; with `auth = "none"` none is needed; with both
    /// sets empty, none can succeed.
    pub fn check_with(
        &self,
        dynamic: &DynamicKeys,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Tenant>>, ApiError> {
        if self.open {
            return Ok(None);
        }
        if !self.enabled() && dynamic.is_empty() {
            return Err(ApiError::unauthorized(NO_KEYS));
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            // Anthropic's SDKs send the key as `x-api-key`.
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "You didn't provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_KEY) or the x-api-key header.",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Arc<Tenant>> = None;
        for (hash, tenant) in &self.keys {
            let diff = hash
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(tenant);
            }
        }
        found
            .or_else(|| dynamic.get(&digest))
            .cloned()
            .map(Some)
            .ok_or_else(|| ApiError::unauthorized("Incorrect API key provided."))
    }
}

/// A key installed at run time (from the binary's store), by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicKey {
    /// The embedder's id for it ([`DynamicKeys::take_used`] returns it).
    pub id: i64,
    /// Display name (for logs and metrics; never the key).
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// Its priority class.
    pub priority: Priority,
    /// Requests per minute, if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute, if limited.
    pub tpm: Option<u64>,
    /// The public models it may use; empty: all.
    pub models: Vec<String>,
}

/// The dynamic keys, by SHA-256.
///
/// A map rather than the static keys' scan: there may be many (one per
/// tenant), and a scan would cost a comparison per key on every request.
/// Looking the presented key's digest up in a map is safe against timing
/// attacks all the same: the lookup's time depends only on the digest of
/// what the client sent (and the map's random hasher), and learning how
/// much of a SHA-256 digest matched a stored one reveals nothing about any
/// key (finding a key for a digest is a preimage attack).
#[derive(Debug, Default)]
pub struct DynamicKeys {
    by_hash: HashMap<[u8; 32], Entry>,
}

#[derive(Debug)]
struct Entry {
    id: i64,
    tenant: Arc<Tenant>,
    /// Set by a request that used the key; cleared by
    /// [`DynamicKeys::take_used`].
    used: AtomicBool,
}

impl DynamicKeys {
    /// From the keys to install (a hash given twice keeps the last one).
    pub fn new(keys: &[DynamicKey]) -> Self {
        Self {
            by_hash: keys
                .iter()
                .map(|k| {
                    let tenant = Tenant {
                        id: Arc::from(k.id.to_string()),
                        name: Arc::from(k.name.as_str()),
                        priority: k.priority,
                        rpm: k.rpm,
                        tpm: k.tpm,
                        models: k.models.iter().map(|m| Arc::from(m.as_str())).collect(),
                    };
                    let entry = Entry {
                        id: k.id,
                        tenant: Arc::new(tenant),
                        used: AtomicBool::new(false),
                    };
                    (k.sha256, entry)
                })
                .collect(),
        }
    }

    /// The ids of the keys used since the last call (each once), clearing
    /// their marks: what the embedder records as "last used".
    pub fn take_used(&self) -> Vec<i64> {
        self.by_hash
            .values()
            .filter(|e| e.used.swap(false, Ordering::Relaxed))
            .map(|e| e.id)
            .collect()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// The key with this digest, marked as used. The mark is written only
    /// when not set yet, so a busy key's requests only read the flag (no
    /// cache-line contention between cores).
    fn get(&self, digest: &[u8; 32]) -> Option<&Arc<Tenant>> {
        let entry = self.by_hash.get(digest)?;
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        Some(&entry.tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> KeySet {
        KeySet::new(&[KeyConfig {
            name: "app".into(),
            sha256: Sha256::digest(b"sk-good").into(),
            priority: Priority::Critical,
            rpm: Some(10),
            tpm: None,
            models: vec!["gpt".into()],
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
        let app = s
            .check(&headers("authorization", "Bearer sk-good"))
            .ok()
            .flatten();
        let app = app.as_deref();
        assert_eq!(app.map(|t| &*t.name), Some("app"));
        assert_eq!(app.map(|t| &*t.id), Some("config:app"));
        assert_eq!(app.map(|t| t.priority), Some(Priority::Critical));
        assert_eq!(app.map(|t| t.rpm), Some(Some(10)));
        assert!(app.is_some_and(|t| t.allows("gpt") && !t.allows("other")));
        assert_eq!(
            s.check(&headers("api-key", "sk-good"))
                .ok()
                .flatten()
                .map(|t| t.name.to_string())
                .as_deref(),
            Some("app")
        );
        // Anthropic's SDKs send `x-api-key`.
        assert_eq!(
            s.check(&headers("x-api-key", "sk-good"))
                .ok()
                .flatten()
                .map(|t| t.name.to_string())
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            s.check(&headers("x-api-key", "sk-bad"))
                .map_err(|e| e.status.as_u16()),
            Err(401)
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
        // No key anywhere: refused, with the way out in the message.
        let none = KeySet::default().check(&HeaderMap::new());
        assert!(none.is_err_and(|e| e.status == 401 && e.message.contains("lifeline keys create")));
        // auth = "none": nothing is checked, not even a wrong key.
        let open = KeySet::from_config(AuthMode::None, &[]);
        assert!(open.is_open());
        assert!(open.check(&HeaderMap::new()).is_ok_and(|t| t.is_none()));
        assert!(open
            .check(&headers("authorization", "Bearer sk-bad"))
            .is_ok_and(|t| t.is_none()));
    }

    #[test]
    fn dynamic_keys_work_beside_static_ones_and_turn_auth_on() {
        let dynamic = DynamicKeys::new(&[DynamicKey {
            id: 7,
            name: "tenant".into(),
            sha256: Sha256::digest(b"ll-dyn").into(),
            priority: Priority::Batch,
            rpm: None,
            tpm: Some(1000),
            models: vec![],
        }]);
        let name = |s: &KeySet, h: &HeaderMap| {
            s.check_with(&dynamic, h)
                .map(|n| n.map(|t| t.name.to_string()))
                .map_err(|e| e.status.as_u16())
        };
        let good = headers("authorization", "Bearer ll-dyn");
        assert!(dynamic.take_used().is_empty());
        let tenant = set().check_with(&dynamic, &good).ok().flatten();
        assert_eq!(tenant.as_ref().map(|t| t.priority), Some(Priority::Batch));
        assert_eq!(tenant.as_ref().map(|t| &*t.id), Some("7"));
        assert!(tenant.is_some_and(|t| t.tpm == Some(1000) && t.allows("any")));
        dynamic.take_used();
        // With static keys, both kinds work.
        assert_eq!(name(&set(), &good), Ok(Some("tenant".into())));
        assert_eq!(name(&set(), &good), Ok(Some("tenant".into())));
        // A use is reported once.
        assert_eq!(dynamic.take_used(), [7]);
        assert!(dynamic.take_used().is_empty());
        assert_eq!(
            name(&set(), &headers("authorization", "Bearer sk-good")),
            Ok(Some("app".into()))
        );
        // Without static keys, a dynamic key alone makes one required.
        let none = KeySet::default();
        assert_eq!(name(&none, &good), Ok(Some("tenant".into())));
        assert_eq!(name(&none, &HeaderMap::new()), Err(401));
        assert_eq!(
            name(&none, &headers("authorization", "Bearer ll-wrong")),
            Err(401)
        );
        // Neither: every request is refused.
        assert_eq!(
            none.check_with(&DynamicKeys::default(), &HeaderMap::new())
                .map_err(|e| e.status.as_u16()),
            Err(401)
        );
    }
}
