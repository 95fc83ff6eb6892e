//! Degraded mode's memory: recent successful answers, by request, in a
//! cache bounded in bytes.
//!
//! When every deployment of a model with `degraded = true` has failed, the
//! attempt loop (`attempt/degraded.rs`) answers a request identical to a
//! recent successful one from here, marked stale. What "identical" means is
//! [`fingerprint`]: same key (tenant), same endpoint, same public model,
//! same JSON body apart
//! from volatile fields (`user`, `stream_options`, Anthropic's
//! `metadata.user_id`, `stream`), key order ignored. Only whole answers are
//! stored; a streaming chat or messages request gets one re-emitted as a
//! stream in its wire's grammar, by the wire's adapter
//! (`crate::providers::stream::answer_as_stream`, in the attempt loop). Only requests with an explicit
//! `temperature: 0` qualify, unless the model sets
//! `degraded_any_temperature` (an absent temperature is the API's default,
//! 1: another answer would differ anyway).
//!
//! [`AnswerCache`] is a two-generation cache (the cheap approximation of
//! LRU that `ip_limit.rs` uses too): answers go into the current
//! generation; when it would exceed half the bound it becomes the previous
//! one and the older previous is dropped whole. A hit in the previous
//! generation moves the entry to the current one. So the bytes held never
//! exceed the bound, and what is dropped first is what was neither stored
//! nor served recently. Each answer is copied into its own buffer (a
//! `Bytes` slice of a bigger read buffer would hold more than it counts).
//!
//! Pure and clock-driven by `tokio::time`: no request path here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

/// A request's identity for degraded mode: SHA-256 of its normalised form.
pub type Fingerprint = [u8; 32];

/// Bytes counted per entry beyond its body: key, instant, map slot.
const ENTRY_OVERHEAD: usize = 96;

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The answer's body (a whole JSON answer, status 200).
    pub body: Bytes,
    /// When it was stored.
    pub stored: Instant,
}

impl Stored {
    fn cost(&self) -> usize {
        self.body.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct Generation {
    entries: HashMap<Fingerprint, Stored>,
    bytes: usize,
}

impl Generation {
    fn remove(&mut self, key: &Fingerprint) -> Option<Stored> {
        let s = self.entries.remove(key)?;
        self.bytes -= s.cost();
        Some(s)
    }
}

#[derive(Debug, Default)]
struct Generations {
    current: Generation,
    previous: Generation,
}

/// Recent successful answers, bounded in bytes (all models together).
#[derive(Debug)]
pub struct AnswerCache {
    bound: u64,
    /// Half the bound: what one generation may hold.
    half: usize,
    inner: Mutex<Generations>,
}

impl AnswerCache {
    /// A cache that never holds more than `bound` bytes.
    pub fn new(bound: u64) -> Self {
        Self {
            bound,
            half: usize::try_from(bound / 2).unwrap_or(usize::MAX),
            inner: Mutex::new(Generations::default()),
        }
    }

    /// The bound it was made with.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Every method leaves the maps consistent between statements.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `body` as the answer to `key` (replacing an older one); an
    /// answer larger than half the bound is not stored.
    pub fn put(&self, key: Fingerprint, body: &[u8]) {
        let s = Stored {
            body: Bytes::copy_from_slice(body),
            stored: Instant::now(),
        };
        if s.cost() > self.half {
            return;
        }
        let mut g = self.lock();
        g.previous.remove(&key);
        g.current.remove(&key);
        self.insert(&mut g, key, s);
    }

    fn insert(&self, g: &mut Generations, key: Fingerprint, s: Stored) {
        if g.current.bytes + s.cost() > self.half {
            g.previous = std::mem::take(&mut g.current);
        }
        g.current.bytes += s.cost();
        g.current.entries.insert(key, s);
    }

    /// The answer stored for `key` within the last `max_age`, if any; an
    /// older one is dropped.
    pub fn get(&self, key: &Fingerprint, max_age: Duration) -> Option<Stored> {
        let now = Instant::now();
        let mut g = self.lock();
        let fresh = |s: &Stored| now.saturating_duration_since(s.stored) <= max_age;
        if let Some(s) = g.current.entries.get(key) {
            if fresh(s) {
                return Some(s.clone());
            }
            g.current.remove(key);
            return None;
        }
        let s = g.previous.remove(key)?;
        if !fresh(&s) {
            return None;
        }
        self.insert(&mut g, *key, s.clone());
        Some(s)
    }

    /// Bytes held now (bodies plus a fixed overhead per entry).
    pub fn bytes(&self) -> usize {
        let g = self.lock();
        g.current.bytes + g.previous.bytes
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.entries.len() + g.previous.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The identity of a request for degraded mode, or `None` when it does not
/// qualify: not a JSON object, or (unless `any_temperature`) a temperature
/// other than an explicit 0.
///
/// `endpoint`, `model` (the public model) and `tenant` (the key's id:
/// one key's answers are never served to another; requests without a key
/// are their own scope) are part of it; in the body,
/// `user`, `stream`, `stream_options` and `metadata.user_id` are ignored
/// (a streaming request may be answered with a whole answer
/// re-emitted as a stream), a zero temperature is `0` however written, and key order does
/// not matter (the body is parsed and written
/// back with sorted keys before it is hashed).
pub fn fingerprint(
    endpoint: &str,
    model: &str,
    tenant: Option<&str>,
    body: &[u8],
    any_temperature: bool,
) -> Option<Fingerprint> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object_mut()?;
    if !any_temperature && o.get("temperature").and_then(serde_json::Value::as_f64) != Some(0.0) {
        return None;
    }
    if o.get("temperature").and_then(serde_json::Value::as_f64) == Some(0.0) {
        // `0`, `0.0` and `-0.0` ask the same.
        o.insert("temperature".into(), serde_json::Value::from(0));
    }
    o.remove("stream");
    o.remove("user");
    o.remove("stream_options");
    if let Some(meta) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("user_id");
        if meta.is_empty() {
            o.remove("metadata");
        }
    }
    let canonical = serde_json::to_vec(&v).ok()?;
    let mut h = Sha256::new();
    h.update(endpoint.as_bytes());
    h.update([0]);
    h.update(model.as_bytes());
    h.update([0]);
    // Length-prefixed: no id can read as another's, nor as "no key".
    match tenant {
        None => h.update([0]),
        Some(id) => {
            h.update([1]);
            h.update((id.len() as u64).to_le_bytes());
            h.update(id.as_bytes());
        }
    }
    h.update(&canonical);
    Some(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Fingerprint {
        [n; 32]
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_in_bytes_is_never_exceeded() {
        let c = AnswerCache::new(10_000);
        let body = vec![b'x'; 900];
        for n in 0..=255u8 {
            c.put(key(n), &body);
            assert!(c.bytes() <= 10_000, "{} bytes after {n}", c.bytes());
        }
        // Two generations of at most 5,000 bytes: at least the last four
        // answers are kept, never more than ten.
        assert!(c.len() >= 4 && c.len() <= 10, "{}", c.len());
        for n in 252..=255u8 {
            assert!(c.get(&key(n), Duration::from_secs(60)).is_some(), "{n}");
        }
        assert!(c.get(&key(0), Duration::from_secs(60)).is_none());
        // Too big for a generation: not stored at all.
        c.put(key(1), &vec![b'y'; 6_000]);
        assert!(c.get(&key(1), Duration::from_secs(60)).is_none());
        assert!(c.bytes() <= 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recently_served_answer_survives_a_generation_change() {
        let c = AnswerCache::new(4 * (100 + ENTRY_OVERHEAD as u64));
        let body = vec![b'x'; 100];
        c.put(key(1), &body);
        c.put(key(2), &body);
        // key(3) starts a new generation; 1 and 2 are the previous one.
        c.put(key(3), &body);
        assert!(c.get(&key(1), Duration::from_secs(1)).is_some(), "moved up");
        // key(4) pushes 3 and 1 to the previous generation; 2 is gone.
        c.put(key(4), &body);
        assert!(c.get(&key(2), Duration::from_secs(1)).is_none());
        assert!(c.get(&key(1), Duration::from_secs(1)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn old_answers_are_not_served() {
        let c = AnswerCache::new(1 << 20);
        c.put(key(1), b"{}");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let s = c.get(&key(1), Duration::from_secs(60));
        assert_eq!(s.map(|s| s.stored.elapsed()), Some(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(c.get(&key(1), Duration::from_secs(60)).is_none());
        assert!(c.is_empty(), "dropped when found too old");
    }

    #[test]
    fn volatile_fields_and_key_order_do_not_matter() {
        let fp = |b: &str| fingerprint("chat", "m", None, b.as_bytes(), false);
        let a = fp(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#);
        assert!(a.is_some());
        let b = fp(
            r#"{"messages":[{"role":"user","content":"hi"}],"user":"alice","temperature":0.0,"model":"m","stream":false,"stream_options":{"include_usage":true}}"#,
        );
        assert_eq!(a, b);
        let c = fp(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi!"}]}"#);
        assert_ne!(a, c, "the content matters");
        let anthropic = |b: &str| fingerprint("messages", "m", None, b.as_bytes(), false);
        assert_eq!(
            anthropic(
                r#"{"model":"m","temperature":0,"max_tokens":5,"metadata":{"user_id":"u1"}}"#
            ),
            anthropic(
                r#"{"model":"m","temperature":0,"max_tokens":5,"metadata":{"user_id":"u2"}}"#
            ),
        );
        assert_ne!(
            fingerprint("chat", "m", None, br#"{"temperature":0}"#, false),
            fingerprint("embeddings", "m", None, br#"{"temperature":0}"#, false),
            "the endpoint matters"
        );
        assert_ne!(
            fingerprint("chat", "m", None, br#"{"temperature":0}"#, false),
            fingerprint("chat", "n", None, br#"{"temperature":0}"#, false),
            "the model matters"
        );
    }

    #[test]
    fn one_keys_answer_is_not_anothers() {
        let fp = |tenant| fingerprint("chat", "m", tenant, br#"{"temperature":0}"#, false);
        assert_ne!(fp(Some("a")), fp(Some("b")), "the key matters");
        assert_ne!(fp(Some("a")), fp(None), "no key is its own scope");
        assert_ne!(fp(Some("")), fp(None));
        assert_eq!(fp(Some("a")), fp(Some("a")));
        assert!(fp(Some("a")).is_some());
    }

    #[test]
    fn only_temperature_zero_and_whole_answers_qualify() {
        let fp = |b: &str, any| fingerprint("chat", "m", None, b.as_bytes(), any);
        assert!(fp(r#"{"messages":[]}"#, false).is_none(), "default is 1");
        assert!(fp(r#"{"temperature":1,"messages":[]}"#, false).is_none());
        assert!(fp(r#"{"temperature":0.2,"messages":[]}"#, false).is_none());
        assert!(fp(r#"{"temperature":0.2,"messages":[]}"#, true).is_some());
        assert!(fp(r#"{"messages":[]}"#, true).is_some());
        assert_eq!(
            fp(r#"{"temperature":0,"stream":true}"#, false),
            fp(r#"{"temperature":0}"#, false),
            "a stream asks the same"
        );
        assert!(fp("not json", true).is_none());
        assert!(fp("[1]", true).is_none());
    }
}
