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
}

impl RequestContext {
    /// A context for a request that arrived now from `peer`.
    pub fn new(id: HeaderValue, peer: SocketAddr) -> Self {
        Self {
            id,
            peer,
            started: Instant::now(),
            tenant: None,
        }
    }
}

impl RequestContext {
    /// The priority class: the tenant's, `standard` without one.
    pub fn priority(&self) -> Priority {
        self.tenant.as_ref().map(|t| t.priority).unwrap_or_default()
    }
}
