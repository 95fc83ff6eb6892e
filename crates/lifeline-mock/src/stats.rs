//! What the mock saw: request counts, outcomes and the last requests.
//!
//! Tests assert on these ("the key arrived", "the stream was cancelled when the
//! client left", "the second deployment got no traffic"), so the counters are
//! exact. One `std` mutex guards them; it is never held across an await.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// How many requests [`Stats::recent`] keeps.
pub const RECENT_CAPACITY: usize = 64;
/// Longest request body kept in a [`RecordedRequest`].
pub const RECORDED_BODY_CAP: usize = 64 * 1024;

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Every request received, not counting `/_mock/*`.
    pub requests: u64,
    /// Responses whose body was fully sent.
    pub completed: u64,
    /// Requests or streams abandoned because the client went away first.
    pub cancelled: u64,
    /// Requests received and not yet completed, cancelled or faulted away.
    pub in_flight: u64,
    /// The most requests in flight at once.
    #[serde(default)]
    pub peak_in_flight: u64,
    /// Requests answered 429 because more than `capacity` were in flight.
    #[serde(default)]
    pub over_capacity: u64,
    /// Requests answered 429 because the `rpm_quota` was used up.
    #[serde(default)]
    pub over_quota: u64,
    /// Path without query -> count.
    pub by_path: BTreeMap<String, u64>,
    /// The last [`RECENT_CAPACITY`] requests, oldest first.
    pub recent: Vec<RecordedRequest>,
}

/// One request as the mock received it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query string as received.
    pub path_and_query: String,
    /// The `Authorization` header, redacted ([`redact`]: tests check that
    /// the right key arrives without the stats serving it).
    pub authorization: Option<String>,
    /// The `api-key` header (Azure), redacted.
    pub api_key: Option<String>,
    /// The `x-api-key` header (Anthropic), redacted.
    #[serde(default)]
    pub x_api_key: Option<String>,
    /// The `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Every header as received (names in lower case), in order; the
    /// credential headers (`authorization`, `api-key`, `x-api-key`)
    /// redacted.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Request body (UTF-8 lossy), capped at [`RECORDED_BODY_CAP`].
    pub body: String,
}

/// How a credential is recorded: its first characters (at most 6, at most
/// half of it), `…`, and the first 8 hex digits of its SHA-256, so that a
/// test can tell which key arrived (compare with `redact(expected)`) while
/// a real key pointed at `lifeline mock` never shows on `/_mock/stats`.
/// An `Authorization` value keeps its scheme (`Bearer sk-…`).
pub fn redact(value: &str) -> String {
    use sha2::Digest;
    let (scheme, secret) = match value.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => {
            (&value[..=scheme.len()], secret)
        }
        _ => ("", value),
    };
    let shown: String = secret
        .chars()
        .take((secret.chars().count() / 2).min(6))
        .collect();
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{scheme}{shown}…{hex}")
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How a counted request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed,
    Cancelled,
    /// Ended by an injected fault (reset, cut): neither completed nor
    /// cancelled by the client.
    Faulted,
}

#[derive(Default)]
struct Counters {
    requests: u64,
    completed: u64,
    cancelled: u64,
    in_flight: u64,
    peak_in_flight: u64,
    over_capacity: u64,
    over_quota: u64,
    /// When each request the `rpm_quota` counts was accepted, oldest first
    /// (those within the window only).
    quota_log: VecDeque<Instant>,
    by_path: BTreeMap<String, u64>,
    recent: VecDeque<RecordedRequest>,
}

/// The live counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Recorder {
    counters: Mutex<Counters>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the counters in a state
        // worse than slightly off, so a poisoned lock is still used.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new data-path request.
    pub(crate) fn start(&self, path: &str) {
        let mut c = self.lock();
        c.requests += 1;
        c.in_flight += 1;
        c.peak_in_flight = c.peak_in_flight.max(c.in_flight);
        match c.by_path.get_mut(path) {
            Some(n) => *n += 1,
            None => {
                c.by_path.insert(path.to_owned(), 1);
            }
        }
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut c = self.lock();
        if c.recent.len() == RECENT_CAPACITY {
            c.recent.pop_front();
        }
        c.recent.push_back(request);
    }

    pub(crate) fn end(&self, ending: Ending) {
        let mut c = self.lock();
        c.in_flight = c.in_flight.saturating_sub(1);
        match ending {
            Ending::Completed => c.completed += 1,
            Ending::Cancelled => c.cancelled += 1,
            Ending::Faulted => {}
        }
    }

    /// Whether more than `capacity` requests are in flight (this one
    /// included); such a request is counted as over capacity.
    pub(crate) fn over_capacity(&self, capacity: u32) -> bool {
        let mut c = self.lock();
        let over = c.in_flight > u64::from(capacity);
        if over {
            c.over_capacity += 1;
        }
        over
    }

    /// Whether `limit` requests were accepted within the last `window`
    /// before `now`; such a request is counted as over the quota, any other
    /// counts against it.
    pub(crate) fn over_quota(&self, limit: u64, window: Duration, now: Instant) -> bool {
        let mut c = self.lock();
        while c
            .quota_log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            c.quota_log.pop_front();
        }
        let over = c.quota_log.len() as u64 >= limit;
        if over {
            c.over_quota += 1;
        } else {
            c.quota_log.push_back(now);
        }
        over
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let c = self.lock();
        Stats {
            requests: c.requests,
            completed: c.completed,
            cancelled: c.cancelled,
            in_flight: c.in_flight,
            peak_in_flight: c.peak_in_flight,
            over_capacity: c.over_capacity,
            over_quota: c.over_quota,
            by_path: c.by_path.clone(),
            recent: c.recent.iter().cloned().collect(),
        }
    }
}

/// Builds the recorded body: lossy UTF-8, at most [`RECORDED_BODY_CAP`] bytes.
pub(crate) fn recorded_body(body: &[u8]) -> String {
    let capped = &body[..body.len().min(RECORDED_BODY_CAP)];
    String::from_utf8_lossy(capped).into_owned()
}
