//! The request context: what the listener learns about one request, and
//! what every later layer reads and extends.
//!
//! The listener creates it ([`crate::server::pipeline`]) with the request id,
//! the peer address and the arrival time; auth adds the key's identity; the
//! attempt loop reads it for logs, metrics and the answer's headers. Layers
//! still to come (limits, admission, priority shedding) read and extend it
//! in the pipeline without touching the attempt loop.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

/// What the request path knows about one client request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `x-request-id`: the client's own (if well-formed) or a generated one.
    pub id: HeaderValue,
    /// The client's address, as the listener saw it.
    pub peer: SocketAddr,
    /// When the request's head was read: the start of its deadline.
    pub started: Instant,
    /// The client key's name, once auth has checked it (`None` when the
    /// data plane needs no key).
    pub key: Option<Arc<str>>,
}

impl RequestContext {
    /// A context for a request that arrived now from `peer`.
    pub fn new(id: HeaderValue, peer: SocketAddr) -> Self {
        Self {
            id,
            peer,
            started: Instant::now(),
            key: None,
        }
    }
}
