//! Per-key limits: the models a key may use, its requests and tokens per
//! minute, and the `x-ratelimit-*` headers that tell the client where it
//! stands.
//!
//! The request path calls [`admit`] once the body is inspected (the model
//! and the token estimate are known) and before the attempt loop:
//!
//! - **models**: a key that lists models reaches only those; any other is
//!   the same 404 `model_not_found` as an unknown model ([`allows`],
//!   [`models_json`] for `GET /v1/models`), so existence is not revealed;
//! - **requests per minute** (`rpm`): one unit per request;
//! - **tokens per minute** (`tpm`): an estimate at admission ([`estimate`]:
//!   the body's bytes / 4 for the prompt, plus `max_completion_tokens` /
//!   `max_tokens` / `max_output_tokens` per choice or a default allowance),
//!   then settled with the `usage` the provider returns
//!   ([`crate::context::Charge`]: the attempt loop settles whole answers,
//!   the relay settles streams when they end), so the budget converges on
//!   real usage.
//!
//! Each budget is a GCRA ([`gcra`]): a minute's worth may be used at once,
//! then it refills continuously. A refusal is a 429 in OpenAI's shape
//! (`code` `rate_limit_exceeded`, `type` `requests` or `tokens`) with an
//! exact `Retry-After` (and `retry-after-ms`); a request whose own estimate
//! exceeds the whole per-minute token budget is refused at once with
//! `x-should-retry: false` (it would never fit). Every answer to a limited
//! key carries the `x-ratelimit-*` headers.
//!
//! The budgets live behind [`Limiter`]; [`Local`] keeps them in this
//! process, keyed by the key's id, apart from the gateway's swapped state,
//! so neither a reload nor a new set of stored keys resets them. A cluster
//! version (shared counters) implements the same trait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response};
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::config::Config;
use crate::context::{Charge, RequestContext, Tenant, TokenMeter};
use crate::error::ApiError;
use crate::gcra::{Denied, Gcra, Quota};
use crate::providers::Endpoint;
use crate::request::Inspected;
use crate::telemetry::{KeyCounters, Metrics};

/// Output tokens charged at admission per choice when the request sets no
/// maximum (reconciled with the real usage when the answer arrives).
pub const DEFAULT_OUTPUT_TOKENS: u64 = 256;

/// `x-ratelimit-limit-requests`.
pub const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
/// `x-ratelimit-remaining-requests`.
pub const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
/// `x-ratelimit-reset-requests`.
pub const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
/// `x-ratelimit-limit-tokens`.
pub const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
/// `x-ratelimit-remaining-tokens`.
pub const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
/// `x-ratelimit-reset-tokens`.
pub const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Whether the request's key (if any) may use the public model `model`.
pub fn allows(ctx: &RequestContext, model: &str) -> bool {
    ctx.tenant.as_ref().is_none_or(|t| t.allows(model))
}

/// The `GET /v1/models` body for `tenant`: `all` (built once per config)
/// unless the key lists models; then the configured models it may use, in
/// config order.
pub fn models_json(config: &Config, all: &Bytes, created: u64, tenant: Option<&Tenant>) -> Bytes {
    match tenant {
        Some(t) if !t.models.is_empty() => {
            let list: Vec<_> = config
                .models
                .iter()
                .filter(|m| t.allows(&m.name))
                .map(|m| serde_json::json!({"id": m.name, "object": "model", "created": created, "owned_by": "lifeline"}))
                .collect();
            Bytes::from(serde_json::json!({"object": "list", "data": list}).to_string())
        }
        _ => all.clone(),
    }
}

/// A request's token estimate at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The prompt: the body's bytes / 4 (rounded up), an upper bound of the
    /// usual 4 characters per token, since the body holds JSON syntax too.
    pub prompt: u64,
    /// The output allowance: the request's own maximum per choice, times
    /// its choices; without one, [`DEFAULT_OUTPUT_TOKENS`] per choice.
    /// Embeddings and image generations: 0.
    pub output: u64,
    /// Whether the output allowance is the request's own maximum.
    pub explicit: bool,
}

/// Estimates what a request costs in tokens (see [`Estimate`]).
pub fn estimate(endpoint: Endpoint, inspected: &Inspected, body_len: usize) -> Estimate {
    let prompt = (body_len as u64).div_ceil(4);
    let choices = u64::from(inspected.choices);
    let (output, explicit) = match endpoint {
        Endpoint::Embeddings | Endpoint::ImagesGenerations => (0, true),
        Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Messages => {
            match inspected.max_output {
                Some(n) => (n.saturating_mul(choices), true),
                None => (DEFAULT_OUTPUT_TOKENS.saturating_mul(choices), false),
            }
        }
    };
    Estimate {
        prompt,
        output,
        explicit,
    }
}

/// Which budget refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

/// What an admitted request learnt: the budgets as it left them (for the
/// headers) and where its token charge is settled.
#[derive(Default)]
pub struct Grant {
    /// The request budget, if the key has one.
    pub requests: Option<Quota>,
    /// The token budget, if the key has one.
    pub tokens: Option<Quota>,
    /// The key's meter, when its tokens are counted.
    pub meter: Option<Arc<dyn TokenMeter>>,
    /// Where the request unit was taken (the key's budgets and its `rpm`),
    /// to give it back if the request is not made.
    unit: Option<(Arc<Entry>, u64)>,
}

impl Grant {
    /// Adds the `x-ratelimit-*` headers of the key's budgets to an answer.
    pub fn headers(&self, h: &mut HeaderMap) {
        headers(h, self.requests, self.tokens);
    }

    /// Gives the request unit back: the request was refused after the
    /// key's limits admitted it (by global admission: shed, queue full or
    /// timed out), so it was never made and must not count against the
    /// key's `rpm`. The token charge is refunded separately, by settling
    /// it at 0 ([`crate::context::Charge::settle`]). Once per grant.
    pub fn refund_request(&mut self) {
        if let Some((e, rpm)) = self.unit.take() {
            let now = nanos(e.epoch);
            e.requests.adjust(now, rpm, -1);
            self.requests = Some(e.requests.peek(now, rpm));
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The budget that refused it.
    pub kind: Kind,
    /// `Some`: it fits after this long; `None`: it never fits (its
    /// estimate exceeds the whole per-minute budget).
    pub retry_after: Option<Duration>,
    /// Units that budget holds now.
    pub used: u64,
    /// Units the request asked for.
    pub requested: u64,
    /// The request budget, if the key has one (for the headers).
    pub requests: Option<Quota>,
    /// The token budget, if the key has one.
    pub tokens: Option<Quota>,
}

/// Where the per-key budgets are kept: [`Local`] in this process; a cluster
/// version would share them.
pub trait Limiter: Send + Sync {
    /// Takes one request and `tokens` from the budgets of `tenant` (none:
    /// a request without a key, which is only counted).
    fn admit(&self, tenant: Option<&Arc<Tenant>>, tokens: u64) -> Result<Grant, Refusal>;
}

/// Checks the request's key against its budgets. Admitted: the key's
/// token charge is recorded in `ctx` and the grant adds the headers to the
/// answer. Refused: the 429 to send (counted and logged here; boxed, as
/// a refusal is the rare case).
pub fn admit(
    limiter: &dyn Limiter,
    metrics: &Metrics,
    ctx: &mut RequestContext,
    endpoint: Endpoint,
    inspected: &Inspected,
    body_len: usize,
) -> Result<Grant, Box<Response<ProxyBody>>> {
    let Some(tenant) = &ctx.tenant else {
        return Ok(limiter.admit(None, 0).unwrap_or_default());
    };
    let est = estimate(endpoint, inspected, body_len);
    // A default allowance never makes a request too large on its own.
    let output = match tenant.tpm {
        Some(tpm) if !est.explicit => est.output.min(tpm.saturating_sub(est.prompt)),
        _ => est.output,
    };
    let tokens = est.prompt.saturating_add(output);
    match limiter.admit(Some(tenant), tokens) {
        Ok(mut grant) => {
            if let Some(meter) = grant.meter.take() {
                ctx.charge = Some(Charge {
                    meter,
                    estimate: tokens,
                    prompt: est.prompt,
                });
            }
            Ok(grant)
        }
        Err(r) => {
            let took = ctx.started.elapsed().as_secs_f64();
            metrics.request(&DASH, 429, took);
            let e = refusal_error(tenant, &r);
            // One line per refusal: debug (a runaway client must not flood
            // the log); counted in lifeline_rate_limited_total{key,kind}.
            tracing::debug!(message = "Request rate-limited.", request_id = ?ctx.id, key_id = &*tenant.id, kind = r.kind.label(), retry_after_ms = r.retry_after.map(|d| d.as_millis() as u64));
            let mut resp = e.into_response_for(endpoint.wire());
            let h = resp.headers_mut();
            if let Some(ra) = r.retry_after {
                h.insert("retry-after-ms", HeaderValue::from(ra.as_millis() as u64));
            }
            headers(h, r.requests, r.tokens);
            Err(Box::new(resp))
        }
    }
}

/// The model label of requests refused before a model was routed.
pub(crate) static DASH: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));

impl Kind {
    /// `requests` or `tokens`: OpenAI's error `type`, and the metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

/// The 429 for a refusal, worded as OpenAI words its own.
fn refusal_error(tenant: &Tenant, r: &Refusal) -> ApiError {
    let (unit, limit) = match r.kind {
        Kind::Requests => ("requests per min (RPM)", r.requests.map_or(0, |q| q.limit)),
        Kind::Tokens => ("tokens per min (TPM)", r.tokens.map_or(0, |q| q.limit)),
    };
    let name = crate::error::bounded(&tenant.name);
    match r.retry_after {
        Some(after) => ApiError::rate_limited(
            r.kind.label(),
            format!(
                "Rate limit reached for key `{name}` on {unit}: Limit {limit}, Used {}, Requested {}. Please try again in {}.",
                r.used,
                r.requested,
                reset_format(after)
            ),
            Some(after),
        ),
        None => {
            let mut e = ApiError::rate_limited(
                r.kind.label(),
                format!(
                    "Request too large for key `{name}` on {unit}: Limit {limit}, Requested {} (estimated: the prompt's bytes / 4 plus max_tokens per choice). The input or output tokens must be reduced in order to run successfully.",
                    r.requested
                ),
                None,
            );
            e.should_retry = Some(false);
            e
        }
    }
}

fn headers(h: &mut HeaderMap, requests: Option<Quota>, tokens: Option<Quota>) {
    // Room for all six at once: growing the map mid-way rehashes it.
    h.reserve(3 * (usize::from(requests.is_some()) + usize::from(tokens.is_some())));
    for (q, [limit, remaining, reset]) in [
        (
            requests,
            [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
        ),
        (tokens, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS]),
    ] {
        let Some(q) = q else { continue };
        h.insert(limit, HeaderValue::from(q.limit));
        h.insert(remaining, HeaderValue::from(q.remaining));
        let mut buf = ResetBuf::default();
        if write_reset(&mut buf, q.reset).is_ok() {
            if let Ok(v) = HeaderValue::from_bytes(buf.as_bytes()) {
                h.insert(reset, v);
            }
        }
    }
}

/// A duration as OpenAI writes its resets (Go's format, to the
/// millisecond): `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3.004s`.
pub fn reset_format(d: Duration) -> String {
    let mut buf = ResetBuf::default();
    match write_reset(&mut buf, d) {
        Ok(()) => String::from_utf8_lossy(buf.as_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

/// [`reset_format`] into a buffer on the stack: it runs for every answer
/// of a limited key, twice, and `format!` allocated four strings a time.
fn write_reset(out: &mut ResetBuf, d: Duration) -> std::fmt::Result {
    use std::fmt::Write;
    let ms = d.as_millis();
    if ms == 0 {
        return out.write_str("0s");
    }
    if ms < 1000 {
        return write!(out, "{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, mut frac) = (ms / 1000 % 60, ms % 1000);
    if h > 0 {
        write!(out, "{h}h")?;
    }
    if h > 0 || m > 0 {
        write!(out, "{m}m")?;
    }
    if frac == 0 {
        return write!(out, "{s}s");
    }
    // Milliseconds as a decimal fraction without trailing zeros.
    let mut width = 3;
    while frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    write!(out, "{s}.{frac:0width$}s")
}

/// A fixed buffer for [`write_reset`] (the longest reset, hours of them,
/// fits in well under its size).
struct ResetBuf {
    bytes: [u8; 48],
    len: usize,
}

impl Default for ResetBuf {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl ResetBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for ResetBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// How often [`Local`] forgets the budgets of idle keys.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The per-key budgets of this process, by the key's id (the store's id,
/// or `config:NAME`), with each key's metric counters.
///
/// Reads are lock-free (an `arc-swap` snapshot of the map); the map is
/// copied only when a key is seen for the first time or swept. Memory is
/// bounded: once a minute, the entries whose budgets are full again and
/// that no request in flight holds are dropped (a full budget is what a
/// new entry starts with, so nothing is lost; the key's metric series
/// stay, bounded by the keys configured and stored).
pub struct Local {
    epoch: Instant,
    entries: ArcSwap<HashMap<Arc<str>, Arc<Entry>>>,
    write: Mutex<()>,
    next_sweep: AtomicU64,
    metrics: Arc<Metrics>,
    anonymous: KeyCounters,
}

/// One key's budgets.
struct Entry {
    epoch: Instant,
    requests: Gcra,
    tokens: Gcra,
    /// The token limit its charges were taken at (0: none), for settling.
    tpm: AtomicU64,
    counters: KeyCounters,
}

fn nanos(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl TokenMeter for Entry {
    fn settle(&self, estimate: u64, used: u64) {
        self.counters.tokens.inc_by(used);
        let tpm = self.tpm.load(Ordering::Relaxed);
        if tpm > 0 && used != estimate {
            let delta = i64::try_from(used)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(estimate).unwrap_or(i64::MAX));
            self.tokens.adjust(nanos(self.epoch), tpm, delta);
        }
    }
}

impl Local {
    /// An empty set of budgets counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let anonymous = metrics.key_counters(&DASH);
        Self {
            epoch: Instant::now(),
            entries: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            next_sweep: AtomicU64::new(SWEEP_EVERY.as_nanos() as u64),
            metrics,
            anonymous,
        }
    }

    /// How many keys have budgets now.
    pub fn len(&self) -> usize {
        self.entries.load().len()
    }

    /// Whether no key has one.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, tenant: &Tenant) -> Arc<Entry> {
        if let Some(e) = self.entries.load().get(&*tenant.id) {
            return e.clone();
        }
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.entries.load_full();
        if let Some(e) = map.get(&*tenant.id) {
            return e.clone();
        }
        let e = Arc::new(Entry {
            epoch: self.epoch,
            requests: Gcra::default(),
            tokens: Gcra::default(),
            tpm: AtomicU64::new(0),
            counters: self.metrics.key_counters(&tenant.name),
        });
        let mut next = HashMap::clone(&map);
        next.insert(tenant.id.clone(), e.clone());
        self.entries.store(Arc::new(next));
        e
    }

    /// Forgets the budgets that are full and unused, at most once a
    /// [`SWEEP_EVERY`] (the first request after it does the work).
    fn sweep(&self, now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(
                    due,
                    now + SWEEP_EVERY.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.entries.load_full();
        let keep = |e: &Arc<Entry>| {
            Arc::strong_count(e) > 1 || !e.requests.full(now) || !e.tokens.full(now)
        };
        if map.values().all(keep) {
            return;
        }
        let next: HashMap<_, _> = map
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        self.entries.store(Arc::new(next));
    }
}

impl Limiter for Local {
    fn admit(&self, tenant: Option<&Arc<Tenant>>, tokens: u64) -> Result<Grant, Refusal> {
        let Some(tenant) = tenant else {
            self.anonymous.admitted.inc();
            return Ok(Grant::default());
        };
        let now = nanos(self.epoch);
        self.sweep(now);
        let e = self.entry(tenant);
        let peek_tokens = |e: &Entry| tenant.tpm.map(|tpm| e.tokens.peek(now, tpm));
        let requests = match tenant.rpm {
            None => None,
            Some(rpm) => match e.requests.take(now, rpm, 1) {
                Ok(q) => Some(q),
                Err(d) => {
                    e.counters.limited_requests.inc();
                    return Err(refusal(
                        Kind::Requests,
                        d,
                        1,
                        Some(e.requests.peek(now, rpm)),
                        peek_tokens(&e),
                    ));
                }
            },
        };
        let quota = match tenant.tpm {
            None => None,
            Some(tpm) => {
                e.tpm.store(tpm, Ordering::Relaxed);
                match e.tokens.take(now, tpm, tokens) {
                    Ok(q) => Some(q),
                    Err(d) => {
                        // The request is not made: its request unit back.
                        let requests = tenant.rpm.map(|rpm| {
                            e.requests.adjust(now, rpm, -1);
                            e.requests.peek(now, rpm)
                        });
                        match d {
                            Denied::TooLarge => e.counters.too_large.inc(),
                            Denied::Wait { .. } => e.counters.limited_tokens.inc(),
                        };
                        return Err(refusal(
                            Kind::Tokens,
                            d,
                            tokens,
                            requests,
                            Some(e.tokens.peek(now, tpm)),
                        ));
                    }
                }
            }
        };
        e.counters.admitted.inc();
        let unit = tenant.rpm.map(|rpm| (e.clone(), rpm));
        Ok(Grant {
            requests,
            tokens: quota,
            meter: Some(e),
            unit,
        })
    }
}

fn refusal(
    kind: Kind,
    d: Denied,
    requested: u64,
    requests: Option<Quota>,
    tokens: Option<Quota>,
) -> Refusal {
    let (retry_after, used) = match d {
        Denied::Wait { retry_after, used } => (Some(retry_after), used),
        Denied::TooLarge => (None, 0),
    };
    Refusal {
        kind,
        retry_after,
        used,
        requested,
        requests,
        tokens,
    }
}

#[cfg(test)]
mod tests;
