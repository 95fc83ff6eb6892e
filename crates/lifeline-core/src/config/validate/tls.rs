//! `[server] tls_cert` and `tls_key`: reading and checking the PEM files.

use std::path::Path;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why [`load`] failed, naming the file at fault.
#[derive(Debug)]
pub(super) enum LoadError {
    /// The certificate file (`tls_cert`).
    Cert(String),
    /// The key file (`tls_key`), or a key that does not match the certificate.
    Key(String),
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1) and checks that they belong together.
pub(super) fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, LoadError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| LoadError::Cert(format!("cannot read {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(LoadError::Cert(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| LoadError::Key(format!("cannot read {}: {e}", key.display())))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InvalidCertificate(e) => LoadError::Cert(format!(
            "{} is not a valid certificate: {e}",
            cert.display()
        )),
        rustls::Error::InconsistentKeys(_) => LoadError::Key(format!(
            "{} does not belong to the certificate in {}",
            key.display(),
            cert.display()
        )),
        e => LoadError::Key(format!("{} is not a usable key: {e}", key.display())),
    })
}
