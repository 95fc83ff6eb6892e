//! Routes the gateway does not own: a hook for the status side.
//!
//! The gateway answers its own paths (the data plane, `/healthz`, the admin
//! API, ...) and nothing else. An [`Extension`], set on a running gateway
//! with [`crate::gateway::Gateway::set_extension`], gets the requests that
//! would otherwise be answered 404:
//!
//! - [`Extension::public`]: a `GET` or `HEAD` for a path the path table does
//!   not know, on the status listener (`[server] status_listen`) or, when
//!   there is none, on the data-plane listener. No key is asked for. It
//!   answers from memory, synchronously: the data plane must never wait on
//!   it. For `HEAD` the listener sends the answer's head without its body,
//!   with the body's length; an answer that already has no body keeps the
//!   `content-length` it set.
//! - [`Extension::admin`]: an authenticated request (the admin token already
//!   checked) under `/admin/` that the admin API has no route for, with its
//!   body read (up to [`MAX_ADMIN_BODY_BYTES`]; a larger one is answered 413
//!   without calling it).
//!
//! `None` from either means the gateway's own 404. The request path of the
//! data-plane endpoints never consults the extension: only a request that
//! would be answered 404 does.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::Response;

/// Largest request body an admin request for an extension route may have (1 MiB).
pub const MAX_ADMIN_BODY_BYTES: usize = 1 << 20;

/// What [`Extension::admin`] returns: its answer, later.
pub type AdminFuture = Pin<Box<dyn Future<Output = Option<Response<Bytes>>> + Send>>;

/// Routes served beside the gateway's own (the status page, its admin API).
pub trait Extension: Send + Sync + 'static {
    /// A public `GET` or `HEAD` request for a path the gateway has no route
    /// for. Answers from memory, synchronously. `None`: the gateway's own 404.
    fn public(&self, req: &http::request::Parts) -> Option<Response<Bytes>>;

    /// An authenticated admin request (the admin token already checked)
    /// under `/admin/` that the gateway has no route for; `body` is the
    /// whole request body (at most [`MAX_ADMIN_BODY_BYTES`]). `None`: 404.
    fn admin(&self, parts: http::request::Parts, body: Bytes) -> AdminFuture;
}
