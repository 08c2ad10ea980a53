//! Which servers the client believes: the system's root certificates, plus an optional
//! private CA read from a PEM file, verified by rustls with the ring provider.
//!
//! One [`Trust`] serves every outbound TLS connection: the HTTP calls of [`crate::ServerUrl`],
//! the WebSocket of `guess-game pvp` (through [`Trust::tls_config`]) and the span exporter
//! (through [`Trust::http_client`]). The system's roots are read once per process, the first
//! time a connection needs them (`rustls-native-certs`: the OS store, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`), so parsing a URL or a flag costs nothing. A CA file is read when it is
//! given, so a missing or unreadable file fails at start-up with its name, not at the first
//! call.
//!
//! ring rather than rustls's default aws-lc-rs: it builds with a C compiler alone, as the
//! server's TLS listener does (crates/server/Cargo.toml).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::ClientError;

/// The roots a connection verifies a server's certificate against.
#[derive(Clone, Default)]
pub struct Trust {
    private_ca: Option<Arc<PrivateCa>>,
}

struct PrivateCa {
    path: PathBuf,
    certificates: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ca_file = self.private_ca.as_ref().map(|ca| &ca.path);
        formatter
            .debug_struct("Trust")
            .field("ca_file", &ca_file)
            .finish()
    }
}

impl Trust {
    /// The system's roots only.
    pub fn system() -> Trust {
        Trust::default()
    }

    /// The system's roots and every certificate in the PEM file `path` (a private CA).
    pub fn with_ca_file(path: &Path) -> Result<Trust, ClientError> {
        let unusable = |reason: String| ClientError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| unusable(error.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| unusable(error.to_string()))?;
        if certificates.is_empty() {
            return Err(unusable("it holds no PEM certificate".to_owned()));
        }
        // Checked now, so a file that parses as PEM but not as a certificate is refused here
        // rather than ignored at the first connection.
        let mut roots = RootCertStore::empty();
        for certificate in &certificates {
            roots
                .add(certificate.clone())
                .map_err(|error| unusable(format!("not a usable CA certificate: {error}")))?;
        }
        Ok(Trust {
            private_ca: Some(Arc::new(PrivateCa {
                path: path.to_owned(),
                certificates,
            })),
        })
    }

    /// [`Trust::with_ca_file`] when a file is given, else [`Trust::system`]: what a
    /// `--ca-file` flag means.
    pub fn from_ca_file(path: Option<&Path>) -> Result<Trust, ClientError> {
        path.map_or_else(|| Ok(Trust::system()), Trust::with_ca_file)
    }

    /// The rustls configuration for a client connection: these roots, the ring provider,
    /// TLS 1.2 and 1.3, ALPN `http/1.1` (all this client and the server speak).
    pub fn tls_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        let Some(private_ca) = &self.private_ca else {
            return system_config();
        };
        let mut roots = system_roots().clone();
        for certificate in &private_ca.certificates {
            roots
                .add(certificate.clone())
                .map_err(|error| ClientError::CaFile {
                    path: private_ca.path.clone(),
                    reason: format!("not a usable CA certificate: {error}"),
                })?;
        }
        client_config(roots).map(Arc::new)
    }

    /// A reqwest client verifying servers against these roots: HTTP/1.1, no proxy (it goes
    /// where the URL says, as a health probe must), no redirects (an API answer is the
    /// answer), connecting and handshaking within `connect_timeout`. `keep_idle_connections`
    /// off opens a connection per request and closes it after, so the server's connection
    /// limits and drain see exactly the calls made.
    pub fn http_client(
        &self,
        connect_timeout: std::time::Duration,
        keep_idle_connections: bool,
    ) -> Result<reqwest::Client, ClientError> {
        let tls = ClientConfig::clone(&*self.tls_config()?);
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        if !keep_idle_connections {
            builder = builder.pool_max_idle_per_host(0);
        }
        builder
            .build()
            .map_err(|error| ClientError::Setup(crate::cause(&error)))
    }
}

/// The system's roots, read at the first call. Certificates the store holds but rustls cannot
/// use (expired formats, unsupported keys) are skipped, as browsers skip them; a store that
/// cannot be read leaves only the private CA, and connections to other servers fail
/// verification, which is the safe way to fail.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

fn system_config() -> Result<Arc<ClientConfig>, ClientError> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let config = Arc::new(client_config(system_roots().clone())?);
    Ok(CONFIG.get_or_init(|| config).clone())
}

fn client_config(roots: RootCertStore) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Setup(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_refused_with_its_name() {
        let directory = std::env::temp_dir().join(format!("client-trust-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let missing = directory.join("missing.pem");
        let error = Trust::with_ca_file(&missing).unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let empty = directory.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = Trust::with_ca_file(&empty).unwrap_err();
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error}"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn no_file_means_the_system_roots() {
        let trust = Trust::from_ca_file(None).unwrap();
        assert!(trust.private_ca.is_none());
        let config = trust.tls_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
