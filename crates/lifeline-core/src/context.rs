//! The request context: what the listener learns about one request, and
//! what every later layer reads and extends.
//!
//! The listener creates it ([`crate::server::pipeline`]) with the request id,
//! the peer address and the arrival time; auth adds the key's identity; the
//! attempt loop reads it for logs, metrics and the answer's headers. Layers
//! between them (limits, admission, priority shedding) read the key's
//! [`Tenant`] from it without touching the attempt loop.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

pub use crate::config::Priority;

/// Who a request comes from: the client key auth accepted, with what that
/// key may do. Shared (`Arc`) between the key set and every request that
/// presents the key; it never holds the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// A stable id for logs and the audit trail: the store's key id
    /// (`"12"`), or `config:NAME` for a key from the config file.
    pub id: Arc<str>,
    /// Display name: logs and metrics (bounded: one per key).
    pub name: Arc<str>,
    /// Its priority class.
    pub priority: Priority,
    /// Requests per minute, if limited.
    pub rpm: Option<u64>,
    /// Tokens per minute, if limited.
    pub tpm: Option<u64>,
    /// The public models it may use; empty: all.
    pub models: Box<[Arc<str>]>,
}

impl Tenant {
    /// Whether this key may use the public model `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| &**m == model)
    }
}

/// Where a request's token charge is settled once the provider's `usage`
/// says what it really cost: the per-key token limiter
/// ([`crate::limit`](../limit/index.html)) implements it. A trait here, at
/// the bottom of the layers, so that the attempt loop and the stream relay
/// can settle a charge without depending on the limiter.
pub trait TokenMeter: Send + Sync {
    /// The request was charged `estimate` tokens at admission and really
    /// used `used`: credit or debit the difference.
    fn settle(&self, estimate: u64, used: u64);
}

/// The tokens a request was charged at admission, to be settled with what
/// it really used (see [`TokenMeter`]). Cloning shares the meter (an `Arc`).
#[derive(Clone)]
pub struct Charge {
    /// The key's meter.
    pub meter: Arc<dyn TokenMeter>,
    /// Tokens charged at admission: prompt estimate plus output allowance.
    pub estimate: u64,
    /// The prompt's share of `estimate`, for a stream that reports no
    /// `usage` (its cost is then this plus one token per streamed chunk).
    pub prompt: u64,
}

impl Charge {
    /// Settles the charge with the tokens really used.
    pub fn settle(&self, used: u64) {
        self.meter.settle(self.estimate, used);
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge")
            .field("estimate", &self.estimate)
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

/// What the request path knows about one client request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `x-request-id`: the client's own (if well-formed) or a generated one.
    pub id: HeaderValue,
    /// The client's address, as the listener saw it.
    pub peer: SocketAddr,
    /// When the request's head was read: the start of its deadline.
    pub started: Instant,
    /// The client key's tenant, once auth has checked it (`None` when the
    /// data plane needs no key).
    pub tenant: Option<Arc<Tenant>>,
    /// The tokens the key's limiter charged at admission, settled with the
    /// answer's `usage` (`None` for a key without a token limit).
    pub charge: Option<Charge>,
}

impl RequestContext {
    /// A context for a request that arrived now from `peer`.
    pub fn new(id: HeaderValue, peer: SocketAddr) -> Self {
        Self {
            id,
            peer,
            started: Instant::now(),
            tenant: None,
            charge: None,
        }
    }
}

impl RequestContext {
    /// The priority class: the tenant's, `standard` without one.
    pub fn priority(&self) -> Priority {
        self.tenant.as_ref().map(|t| t.priority).unwrap_or_default()
    }

    /// The key's id for logs (`-` without a key).
    pub fn key_id(&self) -> &str {
        self.tenant.as_ref().map_or("-", |t| &t.id)
    }
}
