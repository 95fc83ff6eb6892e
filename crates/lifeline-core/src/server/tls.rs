//! TLS on the listeners (rustls, the `ring` provider): the certificate and
//! key files of `[server] tls_cert` / `tls_key`, ALPN `h2` and `http/1.1`.
//!
//! The files are read when the config is loaded (config validation), and
//! the parsed key travels in the config ([`crate::config::TlsFiles`]). The listener's
//! certificate resolver ([`Resolver`]) hands each new handshake the key of
//! the config running now, so a reload (SIGHUP or `POST /admin/reload`)
//! that re-reads the files serves the new certificate to new connections,
//! while connections already open keep theirs. A reload whose certificate
//! or key is unreadable, malformed or mismatched is rejected whole: the
//! running config, and its certificate, stay.
//!
//! Whether a listener speaks TLS is fixed when it binds (like its address):
//! a reload that removes the TLS keys keeps serving the last certificate.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::gateway::Gateway;

/// Hands each handshake the certificate of the config running now.
struct Resolver {
    gw: Gateway,
    /// The last certificate seen in a config (a reload that drops the TLS
    /// keys keeps serving it).
    last: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.gw.live();
        match &live.config.server.tls {
            Some(tls) => {
                if !Arc::ptr_eq(&self.last.load(), &tls.certified) {
                    self.last.store(tls.certified.clone());
                }
                Some(tls.certified.clone())
            }
            None => Some(self.last.load_full()),
        }
    }
}

/// The acceptor for the listeners, if the running config has TLS keys.
pub(super) fn acceptor(gw: &Gateway) -> std::io::Result<Option<TlsAcceptor>> {
    let Some(tls) = gw
        .live()
        .config
        .server
        .tls
        .as_ref()
        .map(|t| t.certified.clone())
    else {
        return Ok(None);
    };
    let resolver = Resolver {
        gw: gw.clone(),
        last: ArcSwap::new(tls),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
