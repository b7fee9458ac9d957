//! TLS with rustls: the certificate the TLS listener presents (read again
//! with the config on SIGHUP), and the roots `https://` upstreams are
//! checked against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The TLS listener's certificate chain and key, as configured and as
/// read.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain's PEM file, leaf first.
    pub cert: PathBuf,
    /// The private key's PEM file.
    pub key: PathBuf,
    /// What the listener hands new connections.
    pub config: Arc<ServerConfig>,
}

// By hand: rustls' config prints its key material's types, and a log
// needs only the paths.
impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private
    /// key) and checks that they belong together. The listener offers
    /// HTTP/2 and HTTP/1.1 by ALPN.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "tls_cert {}: no PEM certificate in it",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls_key {}: {e}", key.display()))?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "tls_cert {} and tls_key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            config: Arc::new(config),
        })
    }
}

/// The client side for `https://` upstreams: the system's trusted roots,
/// and the certificates of `extra_ca` (a PEM file) when given. A system
/// without roots leaves only `extra_ca`; that is logged, not an error,
/// since a private CA may be all an operator wants.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("upstream_ca {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "upstream_ca {}: no PEM certificate in it",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("upstream_ca {}: {e}", path.display()))?;
        }
    } else if added == 0 {
        tracing::warn!(
            "no system root certificates found: https upstreams will fail to verify (give upstream_ca)"
        );
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A client config that trusts nothing, for upstreams that are all
/// `http://`: reading the system's roots is skipped where none is needed.
pub fn no_roots() -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    )
}
