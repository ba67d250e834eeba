//! HTTPS: the certificate chain and key named by `http.tls_certificate` and `http.tls_key`,
//! through rustls on ring (the backend of every other TLS connection of the binaries).
//!
//! The pair is read again on SIGHUP and when either file changes (looked at every few
//! seconds), so a renewed certificate (certbot, cert-manager) is served without a restart
//! and without dropping a connection: each handshake takes whichever pair is current. A pair
//! that does not load (a half-written file, a key that does not match) is logged and the
//! previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a change.
const CHANGE_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls_certificate and http.tls_key go together: set both or neither")]
    Half,
    #[error("cannot read the TLS certificate chain {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key {key} does not belong to the certificate {certificate}: {reason}")]
    Mismatch {
        certificate: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// What a server listening with TLS accepts connections with, and follows its files with.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    files: Arc<CurrentPair>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerTls({})", self.files.certificate.display())
    }
}

impl ServerTls {
    /// The TLS of these settings: `None` when neither file is set.
    pub fn load(
        certificate: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ServerTls>, TlsError> {
        let (certificate, key) = match (certificate, key) {
            (None, None) => return Ok(None),
            (Some(certificate), Some(key)) => (certificate.to_owned(), key.to_owned()),
            _ => return Err(TlsError::Half),
        };
        let provider = Arc::new(ring::default_provider());
        let pair = load_pair(&provider, &certificate, &key)?;
        let files = Arc::new(CurrentPair {
            stamp: RwLock::new(stamp(&certificate, &key)),
            certificate,
            key,
            provider: provider.clone(),
            current: RwLock::new(Arc::new(pair)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Certificate {
                path: files.certificate.clone(),
                reason: error.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(files.clone());
        // HTTP/1.1 only, as on plain connections.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            files,
        }))
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reloads the pair on SIGHUP and when a file changes, until the task is dropped.
    pub async fn follow_changes(self) {
        #[cfg(unix)]
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let asked = {
                let hangup = async {
                    match hangups.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = hangup => true,
                    () = tokio::time::sleep(CHANGE_CHECK) => false,
                }
            };
            #[cfg(not(unix))]
            let asked = {
                tokio::time::sleep(CHANGE_CHECK).await;
                false
            };
            self.files.reload_if(asked);
        }
    }
}

/// The files, and the pair loaded from them last.
#[derive(Debug)]
struct CurrentPair {
    certificate: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and sizes when last loaded.
    stamp: RwLock<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

impl CurrentPair {
    fn reload_if(&self, asked: bool) {
        let now = stamp(&self.certificate, &self.key);
        let changed = now != *self.stamp.read().expect("not poisoned");
        if !asked && !changed {
            return;
        }
        match load_pair(&self.provider, &self.certificate, &self.key) {
            Ok(pair) => {
                *self.current.write().expect("not poisoned") = Arc::new(pair);
                tracing::info!(
                    certificate = %self.certificate.display(),
                    "TLS certificate reloaded"
                );
            }
            Err(error) => {
                tracing::error!(%error, "keeping the TLS certificate served until now");
            }
        }
        // Also after a failure: the same broken files are not retried every few seconds,
        // only once they change again (or on SIGHUP).
        *self.stamp.write().expect("not poisoned") = now;
    }
}

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("not poisoned").clone())
    }
}

fn stamp(certificate: &Path, key: &Path) -> Option<Stamp> {
    let of = |path: &Path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    Some([of(certificate)?, of(key)?])
}

fn load_pair(
    provider: &CryptoProvider,
    certificate: &Path,
    key: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain_error = |reason: String| TlsError::Certificate {
        path: certificate.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|error| chain_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| chain_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(chain_error("no CERTIFICATE block".into()));
    }
    let key_error = |reason: String| TlsError::Key {
        path: key.to_owned(),
        reason,
    };
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|error| key_error(error.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|error| key_error(error.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|error| TlsError::Mismatch {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(pair)
}
