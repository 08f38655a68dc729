//! TLS from certificate and key files (PEM), for the broker's TLS listener and for HTTPS.
//!
//! `chronicle tls init` writes such files for a clinic or lab (a private CA and a server
//! certificate); a deployment with its own PKI points at its own.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {source}")]
    Certificates {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the TLS private key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate and key do not go together, or are not usable: {0}")]
    Config(#[from] rustls::Error),
    #[error("{path} holds no certificate this machine can trust: {reason}")]
    Roots { path: PathBuf, reason: String },
}

/// A server configuration from a PEM certificate chain (the server's certificate first) and
/// its PEM private key, offering `alpn` protocols (e.g. `h2`, `http/1.1` for HTTPS; none for
/// MQTT).
pub fn server_config(
    certificate_chain: &Path,
    private_key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate_chain)
        .and_then(|certs| certs.collect())
        .map_err(|source| TlsError::Certificates {
            path: certificate_chain.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: certificate_chain.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|source| TlsError::Key {
        path: private_key.to_path_buf(),
        source,
    })?;
    // The provider is named: more than one is linked into the binary, so rustls would not
    // pick one by itself.
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// An acceptor for the broker's TLS listener.
pub fn acceptor(certificate_chain: &Path, private_key: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(server_config(
        certificate_chain,
        private_key,
        &[],
    )?))
}

/// A client configuration that trusts the CA certificates in `ca_file` (PEM), or the system's
/// trusted roots without it: for the ingest's connection to an external broker over TLS.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|source| TlsError::Certificates {
                    path: path.to_path_buf(),
                    source,
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(TlsError::Roots {
                    path: path.to_path_buf(),
                    reason: "no usable CA certificate in it".to_owned(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
