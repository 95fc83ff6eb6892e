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
//!   The request's extensions hold an [`AdminCaller`]: who called, from
//!   where, for the audit log.
//! - [`Extension::audit`]: an admin action the gateway did itself (drain,
//!   undrain, reload), for the audit log.
//!
//! `None` from either route method means the gateway's own 404. The request path of the
//! data-plane endpoints never consults the extension: only a request that
//! would be answered 404 does.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use http::Response;

/// Largest request body an admin request for an extension route may have (1 MiB).
pub const MAX_ADMIN_BODY_BYTES: usize = 1 << 20;

/// What [`Extension::admin`] returns: its answer, later.
pub type AdminFuture = Pin<Box<dyn Future<Output = Option<Response<Bytes>>> + Send>>;

/// Who made an authenticated admin request: in the request's extensions
/// (`parts.extensions.get::<AdminCaller>()`) when [`Extension::admin`] is
/// called, and in every [`AuditEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCaller {
    /// The admin token's id ([`token_id`]), never the token.
    pub token_id: String,
    /// The client's socket address; `None` for an action of the local
    /// process itself (a reload on `SIGHUP`).
    pub peer: Option<SocketAddr>,
}

impl AdminCaller {
    /// An actor inside the process (`signal:SIGHUP`): no token, no peer.
    pub fn local(actor: &str) -> Self {
        Self {
            token_id: actor.to_owned(),
            peer: None,
        }
    }

    /// Where the action came from, for logs and the audit log: the peer's
    /// address, or `local`.
    pub fn source(&self) -> String {
        self.peer
            .map_or_else(|| "local".to_owned(), |p| p.to_string())
    }
}

/// An admin token's id for logs and the audit log: `token:` and the first
/// 8 hex digits of the HMAC-SHA-256 of the token keyed by `secret` (the
/// store's, see [`crate::gateway::Gateway::set_actor_id_secret`]): enough to
/// tell tokens apart, and, without the secret, no way to test a guessed
/// token against a log line.
pub fn token_id(secret: &[u8; 16], token: &str) -> String {
    use hmac::digest::{Key, KeyInit};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let mut key = Key::<Hmac<Sha256>>::default();
    for (k, s) in key.iter_mut().zip(secret) {
        *k = *s;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    mac.update(token.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut id = String::from("token:");
    for b in digest.iter().take(4) {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// An admin action the gateway did itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who and from where.
    pub caller: AdminCaller,
    /// `deployment.drain`, `deployment.undrain`, `config.reload`,
    /// `config.reload_rejected`.
    pub action: &'static str,
    /// The deployment's id, or `-`.
    pub target: String,
}

/// Routes served beside the gateway's own (the status page, its admin API).
pub trait Extension: Send + Sync + 'static {
    /// A public `GET` or `HEAD` request for a path the gateway has no route
    /// for. Answers from memory, synchronously. `None`: the gateway's own 404.
    fn public(&self, req: &http::request::Parts) -> Option<Response<Bytes>>;

    /// An authenticated admin request (the admin token already checked)
    /// under `/admin/` that the gateway has no route for; `body` is the
    /// whole request body (at most [`MAX_ADMIN_BODY_BYTES`]). `None`: 404.
    fn admin(&self, parts: http::request::Parts, body: Bytes) -> AdminFuture;

    /// Records an admin action the gateway did itself (the action is done;
    /// this must neither block nor fail it: hand the write off). The
    /// default does nothing.
    fn audit(&self, event: AuditEvent) {
        let _ = event;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_id_is_a_short_keyed_digest() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let id = super::token_id(&a, "admin-secret");
        assert!(id.starts_with("token:") && id.len() == 14, "{id}");
        assert_eq!(id, super::token_id(&a, "admin-secret"));
        assert_ne!(id, super::token_id(&a, "admin-secret2"));
        // Another secret, another id: the log alone tests no guess.
        assert_ne!(id, super::token_id(&b, "admin-secret"));
        assert!(!id.contains("admin"));
    }
}
